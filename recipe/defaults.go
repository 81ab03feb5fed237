package recipe

import "strings"

// ApplyDefaults fills in every field left at its zero value that has a
// default, adds the trailing dot to DNS names and turns empty lists
// (Replication, Probes, Alerts.Routes, the compute blocks' security groups)
// into nil. It never overwrites a value that is set, so calling it again
// changes nothing.
func (r *Recipe) ApplyDefaults() {
	for i := range r.Sites {
		s := &r.Sites[i]
		if s.DB.Host == "" {
			s.DB.Host = s.Address
		}
		if s.DB.Port == 0 {
			s.DB.Port = DefaultDBPort
		}
		if s.DB.ServerID == 0 {
			s.DB.ServerID = uint32(i + 1)
		}
		if s.DB.GTIDDomainID == 0 {
			s.DB.GTIDDomainID = uint32(i + 1)
		}
		if !s.DB.TLS.IsZero() && s.DB.TLS.Mode == "" {
			s.DB.TLS.Mode = TLSVerifyFull
		}
		if s.App.Instances == 0 {
			s.App.Instances = DefaultInstances
		}
		if s.AWS.LaunchTemplate != "" && s.AWS.LaunchTemplateVersion == "" {
			s.AWS.LaunchTemplateVersion = DefaultLaunchTemplateVersion
		}
		if len(s.AWS.SecurityGroupIDs) == 0 {
			s.AWS.SecurityGroupIDs = nil
		}
		if len(s.OpenStack.SecurityGroups) == 0 {
			s.OpenStack.SecurityGroups = nil
		}
	}
	if len(r.Replication) == 0 {
		r.Replication = nil
	}
	if len(r.Probes) == 0 {
		r.Probes = nil
	}
	if len(r.Alerts.Routes) == 0 {
		r.Alerts.Routes = nil
	}

	d := &r.DNS
	d.Zone = fqdn(d.Zone)
	d.Record = fqdn(d.Record)
	if d.TTL == 0 {
		d.TTL = DefaultTTL
	}
	if d.Driver == DriverRFC2136 && d.TSIG.Algorithm == "" {
		d.TSIG.Algorithm = DefaultTSIGAlgorithm
	}

	for i := range r.Probes {
		p := &r.Probes[i]
		if p.Interval == 0 {
			p.Interval = DefaultProbeInterval
		}
		if p.Timeout == 0 {
			p.Timeout = DefaultProbeTimeout
		}
		if p.FailureThreshold == 0 {
			p.FailureThreshold = DefaultFailureThreshold
		}
		if p.RecoveryThreshold == 0 {
			p.RecoveryThreshold = DefaultRecoveryThreshold
		}
	}

	sla := &r.Policy.SLA
	if sla.RTO == 0 {
		sla.RTO = DefaultRTO
	}
	if sla.RPO == 0 {
		sla.RPO = DefaultRPO
	}
	if r.Policy.MaxRPO == 0 {
		r.Policy.MaxRPO = sla.RPO
	}
}

// fqdn returns name with a trailing dot, or "" for "".
func fqdn(name string) string {
	if name == "" || strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}
