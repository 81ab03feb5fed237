package recipe

import (
	"regexp"
	"strconv"
	"strings"
)

// Formats of the cloud identifiers a site's compute block may hold, as the
// providers document them.
var (
	// awsRegionRE matches region codes such as eu-west-1, us-gov-west-1,
	// ap-southeast-5.
	awsRegionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
	// EC2 resource ids: a prefix and 8 (older) or 17 hex digits.
	amiRE              = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
	launchTemplateIDRE = regexp.MustCompile(`^lt-([0-9a-f]{8}|[0-9a-f]{17})$`)
	subnetRE           = regexp.MustCompile(`^subnet-([0-9a-f]{8}|[0-9a-f]{17})$`)
	securityGroupRE    = regexp.MustCompile(`^sg-([0-9a-f]{8}|[0-9a-f]{17})$`)
	// launchTemplateNameRE is EC2's rule for launch template names.
	launchTemplateNameRE = regexp.MustCompile(`^[a-zA-Z0-9().\-/_]{3,128}$`)
	// instanceTypeRE matches family.size, e.g. t3.medium, m7g.2xlarge, u-6tb1.metal.
	instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9-]+$`)
	// uuidRE matches an OpenStack id: a UUID in its canonical form, or
	// without dashes (Nova and Glance accept both).
	uuidRE = regexp.MustCompile(`^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$`)
)

const (
	awsRegionMsg     = "must be an AWS region such as eu-west-1"
	osRegionMsg      = "must be an OpenStack region name: 1-255 printable characters without spaces"
	requiredUnlessLT = "required unless launch_template is set"
)

// ValidName reports whether s is a valid app or site name: 1-31 lower-case
// letters, digits or dashes, starting with a letter. Such a name is safe in
// a task queue name, a DNS label, a cloud tag value, a server name and a
// regular expression.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ValidateCompute checks what a cloud provider needs to act on this site:
// the region's format and, when set, the provider's compute block (aws or
// openstack). With create, the block must be present: it is what instances
// are created from. It returns Problems whose paths are relative to the site
// ("region", "aws.ami"), or nil. Providers call it before any API call, so a
// bad recipe fails before anything is created. For a local site it only
// checks that no cloud block is set.
func (s Site) ValidateCompute(create bool) error {
	var ps Problems
	s.computeProblems("", create, &ps)
	return ps.err()
}

// computeProblems adds the problems of s's region and compute blocks under
// path p. With requireBlock the provider's block must be present; a recipe
// may leave it out (a site Drover never creates needs none).
func (s Site) computeProblems(p string, requireBlock bool, ps *Problems) {
	at := func(name string) string {
		if p == "" {
			return name
		}
		return p + "." + name
	}
	switch s.Provider {
	case ProviderAWS:
		if s.Region != "" && !awsRegionRE.MatchString(s.Region) {
			ps.add(at("region"), awsRegionMsg)
		}
		if s.AWS.IsZero() && requireBlock {
			ps.add(at("aws"), "required to create instances: ami (or launch_template), instance_type, subnet_id, security_group_ids")
		} else if !s.AWS.IsZero() {
			s.AWS.problems(at("aws"), ps)
		}
	case ProviderOpenStack:
		if s.Region != "" && (len(s.Region) > 255 || !printable(s.Region) || strings.ContainsRune(s.Region, ' ')) {
			ps.add(at("region"), osRegionMsg)
		}
		if s.OpenStack.IsZero() && requireBlock {
			ps.add(at("openstack"), "required to create servers: image, flavor, network")
		} else if !s.OpenStack.IsZero() {
			s.OpenStack.problems(at("openstack"), ps)
		}
	}
	if !s.AWS.IsZero() && s.Provider != ProviderAWS {
		ps.add(at("aws"), "only for provider aws")
	}
	if !s.OpenStack.IsZero() && s.Provider != ProviderOpenStack {
		ps.add(at("openstack"), "only for provider openstack")
	}
}

func (c AWSCompute) problems(p string, ps *Problems) {
	lt := c.LaunchTemplate != ""
	switch {
	case c.AMI == "" && !lt:
		ps.add(p+".ami", requiredUnlessLT)
	case c.AMI != "" && !amiRE.MatchString(c.AMI):
		ps.add(p+".ami", "must be an AMI id such as ami-0123456789abcdef0")
	}
	if lt && !launchTemplateIDRE.MatchString(c.LaunchTemplate) && !launchTemplateNameRE.MatchString(c.LaunchTemplate) {
		ps.add(p+".launch_template", "must be a launch template id (lt-…) or name (3-128 letters, digits or ().-/_)")
	}
	if v := c.LaunchTemplateVersion; v != "" {
		n, err := strconv.ParseUint(v, 10, 63)
		switch {
		case !lt:
			ps.add(p+".launch_template_version", "only with launch_template")
		case v != "$Default" && v != "$Latest" && (err != nil || n == 0):
			ps.add(p+".launch_template_version", "must be $Default, $Latest or a version number")
		}
	}
	switch {
	case c.InstanceType == "" && !lt:
		ps.add(p+".instance_type", requiredUnlessLT)
	case c.InstanceType != "" && !instanceTypeRE.MatchString(c.InstanceType):
		ps.add(p+".instance_type", "must be an instance type such as t3.medium")
	}
	switch {
	case c.SubnetID == "" && !lt:
		ps.add(p+".subnet_id", requiredUnlessLT)
	case c.SubnetID != "" && !subnetRE.MatchString(c.SubnetID):
		ps.add(p+".subnet_id", "must be a subnet id such as subnet-0123456789abcdef0")
	}
	if len(c.SecurityGroupIDs) == 0 && !lt {
		ps.add(p+".security_group_ids", "must list at least one security group unless launch_template is set")
	}
	seen := map[string]bool{}
	for k, sg := range c.SecurityGroupIDs {
		sp := index(p+".security_group_ids", k)
		switch {
		case !securityGroupRE.MatchString(sg):
			ps.add(sp, "must be a security group id such as sg-0123456789abcdef0")
		case seen[sg]:
			ps.add(sp, "duplicate security group %s", sg)
		}
		seen[sg] = true
	}
	if c.KeyName != "" && (len(c.KeyName) > 255 || !printableASCII(c.KeyName)) {
		ps.add(p+".key_name", "must be 1-255 printable ASCII characters")
	}
}

func (c OpenStackCompute) problems(p string, ps *Problems) {
	switch {
	case c.Image == "":
		ps.add(p+".image", "required")
	case !uuidRE.MatchString(c.Image):
		ps.add(p+".image", "must be an image id (UUID)")
	}
	switch {
	case c.Flavor == "":
		ps.add(p+".flavor", "required")
	case !validLabel(c.Flavor):
		ps.add(p+".flavor", "must be a flavor id or name: 1-255 printable characters, no leading or trailing space")
	}
	switch {
	case c.Network == "":
		ps.add(p+".network", "required")
	case !uuidRE.MatchString(c.Network):
		ps.add(p+".network", "must be a network id (UUID)")
	}
	if c.KeyPair != "" && !validLabel(c.KeyPair) {
		ps.add(p+".key_pair", "must be a key pair name: 1-255 printable characters, no leading or trailing space")
	}
	seen := map[string]bool{}
	for k, g := range c.SecurityGroups {
		gp := index(p+".security_groups", k)
		switch {
		case !validLabel(g):
			ps.add(gp, "must be a security group name: 1-255 printable characters, no leading or trailing space")
		case seen[g]:
			ps.add(gp, "duplicate security group %s", quoteShort(g))
		}
		seen[g] = true
	}
}

// validLabel reports whether s is a name a cloud API accepts: 1-255
// printable characters without leading or trailing space.
func validLabel(s string) bool {
	return s != "" && len(s) <= 255 && printable(s) && strings.TrimSpace(s) == s
}

// printable reports whether s holds no control characters.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}

// printableASCII reports whether s is printable ASCII (space included).
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
