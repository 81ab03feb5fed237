package recipe

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The cloud example parses, gets its defaults (a launch template's version)
// and keeps its compute blocks; a local site's JSON form has no compute keys.
func TestParseCloudRecipe(t *testing.T) {
	r, err := Load("testdata/cloud.yaml")
	require.NoError(t, err)
	west, _ := r.Site("west")
	assert.Equal(t, AWSCompute{AMI: "ami-0123456789abcdef0", InstanceType: "t3.medium", SubnetID: "subnet-0123456789abcdef0",
		SecurityGroupIDs: []string{"sg-0123456789abcdef0", "sg-00000000"}, KeyName: "drover-ops"}, west.AWS)
	assert.True(t, west.OpenStack.IsZero())
	assert.Equal(t, 2, west.App.Instances)
	south, _ := r.Site("south")
	assert.Equal(t, AWSCompute{LaunchTemplate: "drover-petclinic", LaunchTemplateVersion: "$Default"}, south.AWS)
	north, _ := r.Site("north")
	assert.Equal(t, OpenStackCompute{Image: "7d3bf4d6-5a7c-4f6e-9a51-2b0c6c3a9f10", Flavor: "m1.medium",
		Network: "3f1a9a52-8a43-4a4f-b1d2-6f0f9b1c2d3e", KeyPair: "drover-ops", SecurityGroups: []string{"default", "mariadb"}}, north.OpenStack)
	for _, s := range r.Sites {
		assert.NoError(t, s.ValidateCompute(true), "site %s", s.Name)
	}

	east, _ := r.Site("east")
	b, err := json.Marshal(east)
	require.NoError(t, err)
	assert.NotContains(t, string(b), `"aws"`)
	assert.NotContains(t, string(b), `"openstack"`)
	b, err = json.Marshal(west)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"aws":{"ami":"ami-0123456789abcdef0"`)
}

// Strict decoding reaches into the compute blocks: an unknown field or a
// wrong type names its path.
func TestParseComputeStrict(t *testing.T) {
	y := readTestdata(t, "cloud.yaml")
	y = strings.Replace(y, "ami: ami-0123456789abcdef0", "amii: ami-0123456789abcdef0", 1)
	y = strings.Replace(y, "security_groups: [default, mariadb]", "security_groups: default", 1)
	_, err := Parse([]byte(y))
	require.Error(t, err)
	got := err.Error()
	for _, want := range []string{
		"sites[1].aws.amii: unknown field (line 20)",
		"sites[1].aws.ami: required unless launch_template is set",
		"sites[3].openstack.security_groups: must be a list",
	} {
		assert.Contains(t, got, want)
	}
}

func TestValidateCompute(t *testing.T) {
	const (
		ami    = "ami-0123456789abcdef0"
		subnet = "subnet-0123456789abcdef0"
		sg     = "sg-0123456789abcdef0"
		uuid   = "7d3bf4d6-5a7c-4f6e-9a51-2b0c6c3a9f10"
	)
	awsSite := func(r *Recipe) *Site {
		s := &r.Sites[1]
		s.Provider, s.Region, s.Address, s.DB.Host = "aws", "eu-west-1", "west.example.com", "db.west.example.com"
		s.AWS = AWSCompute{AMI: ami, InstanceType: "t3.medium", SubnetID: subnet, SecurityGroupIDs: []string{sg}}
		return s
	}
	osSite := func(r *Recipe) *Site {
		s := &r.Sites[1]
		s.Provider, s.Region, s.Address, s.DB.Host = "openstack", "RegionOne", "west.example.com", "db.west.example.com"
		s.OpenStack = OpenStackCompute{Image: uuid, Flavor: "m1.small", Network: uuid}
		return s
	}
	p := func(path, msg string) Problems { return Problems{{path, msg}} }
	tests := []struct {
		name   string
		mutate func(r *Recipe)
		want   Problems
	}{
		{"aws from ami", func(r *Recipe) { awsSite(r) }, nil},
		{"aws without a block is still a valid recipe", func(r *Recipe) { awsSite(r).AWS = AWSCompute{} }, nil},
		{"aws launch template alone", func(r *Recipe) {
			awsSite(r).AWS = AWSCompute{LaunchTemplate: "lt-0123456789abcdef0", LaunchTemplateVersion: "7"}
		}, nil},
		{"aws launch template overridden", func(r *Recipe) {
			s := awsSite(r)
			s.AWS.LaunchTemplate, s.AWS.LaunchTemplateVersion = "petclinic/db_v2", "$Latest"
		}, nil},
		{"aws old short ids", func(r *Recipe) {
			s := awsSite(r)
			s.AWS.AMI, s.AWS.SubnetID, s.AWS.SecurityGroupIDs = "ami-1a2b3c4d", "subnet-1a2b3c4d", []string{"sg-1a2b3c4d"}
		}, nil},
		{"aws region bad", func(r *Recipe) { awsSite(r).Region = "Europe (Ireland)" }, p("sites[1].region", awsRegionMsg)},
		{"aws region without number", func(r *Recipe) { awsSite(r).Region = "eu-west" }, p("sites[1].region", awsRegionMsg)},
		{"aws region gov", func(r *Recipe) { awsSite(r).Region = "us-gov-west-1" }, nil},
		{"aws region is checked without a block", func(r *Recipe) { s := awsSite(r); s.AWS = AWSCompute{}; s.Region = "moon-1" },
			p("sites[1].region", awsRegionMsg)},
		{"aws missing image", func(r *Recipe) { awsSite(r).AWS.AMI = "" }, p("sites[1].aws.ami", requiredUnlessLT)},
		{"aws bad ami", func(r *Recipe) { awsSite(r).AWS.AMI = "ubuntu-24.04" },
			p("sites[1].aws.ami", "must be an AMI id such as ami-0123456789abcdef0")},
		{"aws everything missing", func(r *Recipe) { awsSite(r).AWS = AWSCompute{KeyName: "ops"} }, Problems{
			{"sites[1].aws.ami", requiredUnlessLT},
			{"sites[1].aws.instance_type", requiredUnlessLT},
			{"sites[1].aws.subnet_id", requiredUnlessLT},
			{"sites[1].aws.security_group_ids", "must list at least one security group unless launch_template is set"},
		}},
		{"aws bad launch template", func(r *Recipe) { awsSite(r).AWS.LaunchTemplate = "my template" },
			p("sites[1].aws.launch_template", "must be a launch template id (lt-…) or name (3-128 letters, digits or ().-/_)")},
		{"aws version without template", func(r *Recipe) { awsSite(r).AWS.LaunchTemplateVersion = "3" },
			p("sites[1].aws.launch_template_version", "only with launch_template")},
		{"aws bad version", func(r *Recipe) {
			s := awsSite(r)
			s.AWS.LaunchTemplate, s.AWS.LaunchTemplateVersion = "lt-0123456789abcdef0", "latest"
		}, p("sites[1].aws.launch_template_version", "must be $Default, $Latest or a version number")},
		{"aws version zero", func(r *Recipe) {
			s := awsSite(r)
			s.AWS.LaunchTemplate, s.AWS.LaunchTemplateVersion = "lt-0123456789abcdef0", "0"
		}, p("sites[1].aws.launch_template_version", "must be $Default, $Latest or a version number")},
		{"aws bad instance type", func(r *Recipe) { awsSite(r).AWS.InstanceType = "large" },
			p("sites[1].aws.instance_type", "must be an instance type such as t3.medium")},
		{"aws bad subnet", func(r *Recipe) { awsSite(r).AWS.SubnetID = "vpc-0123456789abcdef0" },
			p("sites[1].aws.subnet_id", "must be a subnet id such as subnet-0123456789abcdef0")},
		{"aws bad and duplicate security groups", func(r *Recipe) { awsSite(r).AWS.SecurityGroupIDs = []string{sg, "default", sg} }, Problems{
			{"sites[1].aws.security_group_ids[1]", "must be a security group id such as sg-0123456789abcdef0"},
			{"sites[1].aws.security_group_ids[2]", "duplicate security group " + sg},
		}},
		{"aws bad key name", func(r *Recipe) { awsSite(r).AWS.KeyName = "ops\nkey" },
			p("sites[1].aws.key_name", "must be 1-255 printable ASCII characters")},
		{"aws block on a local site", func(r *Recipe) { r.Sites[0].AWS.AMI = ami },
			p("sites[0].aws", "only for provider aws")},

		{"openstack", func(r *Recipe) { osSite(r) }, nil},
		{"openstack full", func(r *Recipe) {
			s := osSite(r)
			s.OpenStack.KeyPair, s.OpenStack.SecurityGroups = "ops key", []string{"default", "db"}
			s.OpenStack.Image = strings.ReplaceAll(uuid, "-", "")
		}, nil},
		{"openstack missing image", func(r *Recipe) { osSite(r).OpenStack.Image = "" }, p("sites[1].openstack.image", "required")},
		{"openstack image by name", func(r *Recipe) { osSite(r).OpenStack.Image = "ubuntu-24.04" },
			p("sites[1].openstack.image", "must be an image id (UUID)")},
		{"openstack everything missing", func(r *Recipe) { osSite(r).OpenStack = OpenStackCompute{KeyPair: "ops"} }, Problems{
			{"sites[1].openstack.image", "required"},
			{"sites[1].openstack.flavor", "required"},
			{"sites[1].openstack.network", "required"},
		}},
		{"openstack bad flavor", func(r *Recipe) { osSite(r).OpenStack.Flavor = " m1.small" },
			p("sites[1].openstack.flavor", "must be a flavor id or name: 1-255 printable characters, no leading or trailing space")},
		{"openstack network by name", func(r *Recipe) { osSite(r).OpenStack.Network = "private" },
			p("sites[1].openstack.network", "must be a network id (UUID)")},
		{"openstack duplicate security group", func(r *Recipe) { osSite(r).OpenStack.SecurityGroups = []string{"db", "db"} },
			p("sites[1].openstack.security_groups[1]", `duplicate security group "db"`)},
		{"openstack bad region", func(r *Recipe) { osSite(r).Region = "Region One" }, p("sites[1].region", osRegionMsg)},
		{"openstack block on an aws site", func(r *Recipe) {
			s := awsSite(r)
			s.OpenStack.Flavor = "m1.small"
		}, p("sites[1].openstack", "only for provider openstack")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := wantValid()
			tt.mutate(r)
			err := r.Validate()
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.Equal(t, tt.want, err)
		})
	}
}

// ValidateCompute, what the providers run before any API call, also
// demands the provider's block and reports paths relative to the site.
func TestSiteValidateCompute(t *testing.T) {
	s := Site{Name: "west", Provider: "aws", Region: "eu-west-1"}
	assert.Equal(t, Problems{{"aws", "required to create instances: ami (or launch_template), instance_type, subnet_id, security_group_ids"}},
		s.ValidateCompute(true))
	s.Region = "eu-west"
	s.AWS = AWSCompute{LaunchTemplate: "lt-0123456789abcdef0"}
	assert.Equal(t, Problems{{"region", awsRegionMsg}}, s.ValidateCompute(true))

	s = Site{Name: "north", Provider: "openstack", Region: "RegionOne"}
	assert.Equal(t, Problems{{"openstack", "required to create servers: image, flavor, network"}}, s.ValidateCompute(true))
	s.OpenStack = OpenStackCompute{Flavor: "m1.small"}
	assert.Equal(t, Problems{{"openstack.image", "required"}, {"openstack.network", "required"}}, s.ValidateCompute(true))

	assert.NoError(t, Site{Name: "east", Provider: "local"}.ValidateCompute(true))
	assert.NoError(t, Site{Name: "west", Provider: "aws", Region: "eu-west-1"}.ValidateCompute(false), "stop and destroy need no block")
	assert.True(t, ValidName("west-2"))
	assert.False(t, ValidName("../west"))
}
