package aws_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drover-sre/drover/activities/internal/cloudtest"
	"github.com/drover-sre/drover/activities/provider"
	awsp "github.com/drover-sre/drover/activities/provider/aws"
	"github.com/drover-sre/drover/recipe"
)

const (
	testAccessKey = "AKIDDROVERTEST"
	testAMI       = "ami-0123456789abcdef0"
	testRegion    = "eu-west-1"
)

// newCompute returns a Compute whose clients are the real SDK client
// pointed at f, with static credentials, the SDK's own retries off (so a
// test sees every request and every error), and short waits. factoryCalls
// counts how often a client was built.
func newCompute(f *fakeEC2) (*awsp.Compute, *atomic.Int32) {
	var calls atomic.Int32
	c := &awsp.Compute{
		NewClient: func(_ context.Context, region string) (awsp.EC2API, error) {
			calls.Add(1)
			cfg := aws.Config{
				Region:           region,
				Credentials:      credentials.NewStaticCredentialsProvider(testAccessKey, "drover-test-secret", ""),
				RetryMaxAttempts: 1,
			}
			return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(f.srv.URL) }), nil
		},
		PollInterval: 2 * time.Millisecond, MaxPollInterval: 10 * time.Millisecond, WaitTimeout: 5 * time.Second,
	}
	return c, &calls
}

// names are the aws provider's activity names.
var names, _ = provider.Names(recipe.ProviderAWS)

// westSite is an aws site whose compute block names the fake's AMI.
func westSite(instances int) recipe.Site {
	return recipe.Site{
		Name: "west", Provider: "aws", Region: testRegion, Address: "west.example.com",
		DB:  recipe.Database{Host: "db.west.example.com", Port: 3306, User: "drover", Password: "env:DB_PW", ServerID: 2, GTIDDomainID: 2},
		App: recipe.AppTier{Endpoints: []string{"https://west.example.com"}, Instances: instances},
		AWS: recipe.AWSCompute{AMI: testAMI, InstanceType: "t3.medium", SubnetID: "subnet-0123456789abcdef0",
			SecurityGroupIDs: []string{"sg-0123456789abcdef0", "sg-0fedcba9876543210"}, KeyName: "drover-ops"},
	}
}

func siteTags(app, site, role string) map[string]string {
	return map[string]string{provider.TagApp: app, provider.TagSite: site, provider.TagRole: role}
}

func roles(st provider.SiteState) []string {
	var out []string
	for _, i := range st.Instances {
		out = append(out, i.Role+":"+i.State)
	}
	return out
}

// Create launches one db instance and the app tier with the documented
// RunInstances parameters and tags, waits until they run and reports their
// addresses; a second Create launches nothing and reports the same
// instances.
func TestCreateIsIdempotent(t *testing.T) {
	t.Parallel()
	f := newFakeEC2(t, testRegion)
	f.settle = 2
	c, _ := newCompute(f)
	ctx := context.Background()
	in := provider.SiteInput{App: "petclinic", Site: westSite(2), Run: "clone-1", Request: "req-1"}

	st, err := c.Create(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, []string{"db:running", "app:running", "app:running"}, roles(st))
	assert.Len(t, st.Created, 3)
	assert.ElementsMatch(t, st.Created, provider.IDs(st.Instances))
	assert.True(t, st.Running())
	assert.Len(t, st.Addresses(provider.RoleApp), 2)
	assert.Regexp(t, `^10\.0\.`, st.Addresses(provider.RoleDB)[0])
	for _, i := range st.Instances {
		assert.Equal(t, "clone-1", i.Run)
		assert.Equal(t, "drover-petclinic-west-"+i.Role, i.Name)
		assert.NotEmpty(t, i.PublicIP)
	}

	runs := f.requests("RunInstances")
	require.Len(t, runs, 2, "one RunInstances per role")
	db, app := runs[0], runs[1]
	for k, want := range map[string]string{
		"ImageId": testAMI, "InstanceType": "t3.medium", "SubnetId": "subnet-0123456789abcdef0", "KeyName": "drover-ops",
		"MinCount": "1", "MaxCount": "1", "SecurityGroupId.1": "sg-0123456789abcdef0", "SecurityGroupId.2": "sg-0fedcba9876543210",
		"TagSpecification.1.ResourceType": "instance", "TagSpecification.2.ResourceType": "volume",
	} {
		assert.Equal(t, want, db.Get(k), k)
	}
	assert.Equal(t, "2", app.Get("MinCount"))
	assert.Equal(t, "2", app.Get("MaxCount"))
	assert.Equal(t, map[string]string{"Name": "drover-petclinic-west-db", provider.TagApp: "petclinic", provider.TagSite: "west",
		provider.TagRole: "db", provider.TagRun: "clone-1"}, tagsOf(db, 1))
	assert.Equal(t, tagsOf(db, 1), tagsOf(db, 2), "volumes carry the instance's tags")
	assert.Equal(t, "app", tagsOf(app, 1)[provider.TagRole])
	assert.Regexp(t, `^drover-[0-9a-f]{48}$`, db.Get("ClientToken"))
	assert.NotEqual(t, db.Get("ClientToken"), app.Get("ClientToken"))
	describe := f.requests("DescribeInstances")[0]
	assert.Equal(t, url.Values{
		"Action": {"DescribeInstances"}, "Version": {"2016-11-15"}, "MaxResults": {"1000"},
		"Filter.1.Name": {"tag:drover:app"}, "Filter.1.Value.1": {"petclinic"},
		"Filter.2.Name": {"tag:drover:site"}, "Filter.2.Value.1": {"west"},
		"Filter.3.Name": {"instance-state-name"}, "Filter.3.Value.1": {"pending"}, "Filter.3.Value.2": {"running"},
		"Filter.3.Value.3": {"stopping"}, "Filter.3.Value.4": {"stopped"}, "Filter.3.Value.5": {"shutting-down"},
	}, describe, "the site is found by its tags")

	again, err := c.Create(ctx, provider.SiteInput{App: "petclinic", Site: westSite(2), Run: "clone-2", Request: "req-2"})
	require.NoError(t, err)
	assert.Empty(t, again.Created)
	assert.Equal(t, provider.IDs(st.Instances), provider.IDs(again.Instances))
	assert.Equal(t, 2, f.count("RunInstances"), "nothing launched the second time")
}

// tagsOf reads the tags of TagSpecification n of a RunInstances request.
func tagsOf(form url.Values, n int) map[string]string {
	out := map[string]string{}
	p := "TagSpecification." + string(rune('0'+n)) + ".Tag."
	for m := 1; ; m++ {
		k := form.Get(p + string(rune('0'+m)) + ".Key")
		if k == "" {
			return out
		}
		out[k] = form.Get(p + string(rune('0'+m)) + ".Value")
	}
}

// A RunInstances whose answer is lost, retried while DescribeInstances does
// not show the new instances yet, returns the same instances thanks to the
// ClientToken: still one db instance.
func TestCreateRetryAfterLostAnswer(t *testing.T) {
	t.Parallel()
	f := newFakeEC2(t, testRegion)
	f.dropRun, f.hide = true, 3
	c, _ := newCompute(f)
	ctx := context.Background()
	in := provider.SiteInput{App: "petclinic", Site: westSite(1), Request: "activity-7"}

	_, err := c.Create(ctx, in)
	require.Error(t, err)
	assert.Equal(t, provider.Transient, provider.KindOf(err), "%v", err)
	assert.ErrorContains(t, err, "RunInstances: InternalError")

	st, err := c.Create(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, []string{"db:running", "app:running"}, roles(st))
	runs := f.requests("RunInstances")
	require.Len(t, runs, 3)
	assert.Equal(t, runs[0].Get("ClientToken"), runs[1].Get("ClientToken"), "the retry reuses the token")
	f.mu.Lock()
	n := len(f.instances)
	f.mu.Unlock()
	assert.Equal(t, 2, n, "no duplicate instance")
}

// Stop (fencing) stops exactly the site's instances: another site of the
// same app, another app's site of the same name and an untagged instance
// keep running. Stopping again sends nothing; Start brings them back; a
// role filter stops only that role.
func TestStopFencesOnlyTheSite(t *testing.T) {
	t.Parallel()
	f := newFakeEC2(t, testRegion)
	east := f.put(siteTags("petclinic", "east", "db"))
	otherApp := f.put(siteTags("billing", "west", "db"))
	untagged := f.put(map[string]string{"Name": "drover-petclinic-west-db"})
	noRole := f.put(map[string]string{provider.TagApp: "petclinic", provider.TagSite: "west"})
	c, _ := newCompute(f)
	ctx := context.Background()
	in := provider.SiteInput{App: "petclinic", Site: westSite(2), Force: true}
	created, err := c.Create(ctx, in)
	require.NoError(t, err)
	require.Len(t, created.Instances, 3)

	st, err := c.Stop(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, []string{"db:stopped", "app:stopped", "app:stopped"}, roles(st))
	assert.True(t, st.Stopped())
	assert.ElementsMatch(t, provider.IDs(created.Instances), st.Changed)
	stops := f.requests("StopInstances")
	require.Len(t, stops, 1)
	assert.Equal(t, "true", stops[0].Get("Force"))
	assert.ElementsMatch(t, provider.IDs(created.Instances), []string{stops[0].Get("InstanceId.1"), stops[0].Get("InstanceId.2"), stops[0].Get("InstanceId.3")})
	for _, id := range []string{east, otherApp, untagged, noRole} {
		assert.Equal(t, "running", f.stateOf(id), "instance %s is not the site's", id)
	}

	st, err = c.Stop(ctx, in)
	require.NoError(t, err)
	assert.Empty(t, st.Changed)
	assert.Equal(t, 1, f.count("StopInstances"), "already stopped: nothing sent")

	st, err = c.Start(ctx, in)
	require.NoError(t, err)
	assert.True(t, st.Running())
	assert.Len(t, st.Changed, 3)

	in.Roles = []string{provider.RoleApp}
	st, err = c.Stop(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, []string{"db:running", "app:stopped", "app:stopped"}, roles(st))
	assert.True(t, st.Stopped(provider.RoleApp))
	assert.False(t, st.Stopped())

	// Start waits for an instance still stopping before starting it.
	f.mu.Lock()
	for _, i := range f.instances {
		if i.tags[provider.TagSite] == "west" && i.tags[provider.TagApp] == "petclinic" && i.tags[provider.TagRole] == "db" {
			i.state, i.settle = "stopping", 2
		}
	}
	f.mu.Unlock()
	in.Roles = nil
	st, err = c.Start(ctx, in)
	require.NoError(t, err)
	assert.True(t, st.Running(), "%v", roles(st))
	assert.Len(t, st.Changed, 3)
}

// Destroy with a run removes only what that run created; without a run it
// removes the rest of the site, never another site's instances; destroying
// what is gone sends nothing.
func TestDestroyOnlyWhatWasCreated(t *testing.T) {
	t.Parallel()
	f := newFakeEC2(t, testRegion)
	before := f.put(siteTags("petclinic", "west", "db"))
	east := f.put(siteTags("petclinic", "east", "app"))
	c, _ := newCompute(f)
	ctx := context.Background()

	st, err := c.Create(ctx, provider.SiteInput{App: "petclinic", Site: westSite(2), Run: "clone-9"})
	require.NoError(t, err)
	require.Len(t, st.Created, 2, "the db instance existed: only the app tier is created")

	st, err = c.Destroy(ctx, provider.SiteInput{App: "petclinic", Site: westSite(2), Run: "clone-9"})
	require.NoError(t, err)
	assert.Equal(t, []string{"db:running"}, roles(st))
	assert.Equal(t, before, st.Instances[0].ID)
	terminates := f.requests("TerminateInstances")
	require.Len(t, terminates, 1)
	assert.ElementsMatch(t, st.Changed, []string{terminates[0].Get("InstanceId.1"), terminates[0].Get("InstanceId.2")})
	assert.Empty(t, terminates[0].Get("InstanceId.3"))

	st, err = c.Destroy(ctx, provider.SiteInput{App: "petclinic", Site: westSite(2)})
	require.NoError(t, err)
	assert.Empty(t, st.Instances)
	assert.Equal(t, []string{before}, st.Changed)
	assert.Equal(t, "terminated", f.stateOf(before))
	assert.Equal(t, "running", f.stateOf(east))

	st, err = c.Destroy(ctx, provider.SiteInput{App: "petclinic", Site: westSite(2)})
	require.NoError(t, err)
	assert.Empty(t, st.Changed)
	assert.Equal(t, 2, f.count("TerminateInstances"))
}

// Scale grows the app tier by launching the missing instances and shrinks
// it by terminating stopped ones first, then the newest; the db instance is
// never touched.
func TestScale(t *testing.T) {
	t.Parallel()
	f := newFakeEC2(t, testRegion)
	c, _ := newCompute(f)
	ctx := context.Background()
	st, err := c.Create(ctx, provider.SiteInput{App: "petclinic", Site: westSite(1)})
	require.NoError(t, err)
	first := st.Role(provider.RoleApp)[0].ID

	st, err = c.Scale(ctx, provider.ScaleInput{App: "petclinic", Site: westSite(1), Instances: 3})
	require.NoError(t, err)
	assert.Len(t, st.Role(provider.RoleApp), 3)
	assert.Len(t, st.Created, 2)
	assert.Equal(t, "2", f.requests("RunInstances")[2].Get("MinCount"))

	st, err = c.Scale(ctx, provider.ScaleInput{App: "petclinic", Site: westSite(1), Instances: 1})
	require.NoError(t, err)
	assert.Equal(t, []string{"db:running", "app:running"}, roles(st))
	assert.Equal(t, first, st.Role(provider.RoleApp)[0].ID, "the oldest app instance stays")

	st, err = c.Scale(ctx, provider.ScaleInput{App: "petclinic", Site: westSite(1), Instances: 1})
	require.NoError(t, err)
	assert.Empty(t, st.Created)
	assert.Empty(t, st.Changed)

	st, err = c.Scale(ctx, provider.ScaleInput{App: "petclinic", Site: westSite(1), Instances: 0})
	require.NoError(t, err)
	assert.Equal(t, []string{"db:running"}, roles(st))
}

// A site created from a launch template sends the template (by name or id,
// with its version) and no image or network parameters.
func TestCreateFromLaunchTemplate(t *testing.T) {
	t.Parallel()
	f := newFakeEC2(t, testRegion)
	f.templates["drover-petclinic"] = testAMI
	f.templates["lt-0123456789abcdef0"] = testAMI
	c, _ := newCompute(f)
	ctx := context.Background()
	s := westSite(1)
	s.AWS = recipe.AWSCompute{LaunchTemplate: "drover-petclinic"}
	_, err := c.Create(ctx, provider.SiteInput{App: "petclinic", Site: s})
	require.NoError(t, err)
	run := f.requests("RunInstances")[0]
	assert.Equal(t, "drover-petclinic", run.Get("LaunchTemplate.LaunchTemplateName"))
	assert.Equal(t, "$Default", run.Get("LaunchTemplate.Version"))
	for _, k := range []string{"ImageId", "InstanceType", "SubnetId", "SecurityGroupId.1", "LaunchTemplate.LaunchTemplateId"} {
		assert.Empty(t, run.Get(k), k)
	}

	s.Name = "south"
	s.AWS = recipe.AWSCompute{LaunchTemplate: "lt-0123456789abcdef0", LaunchTemplateVersion: "4", InstanceType: "m7g.large"}
	_, err = c.Create(ctx, provider.SiteInput{App: "petclinic", Site: s})
	require.NoError(t, err)
	run = f.requests("RunInstances")[2]
	assert.Equal(t, "lt-0123456789abcdef0", run.Get("LaunchTemplate.LaunchTemplateId"))
	assert.Equal(t, "4", run.Get("LaunchTemplate.Version"))
	assert.Equal(t, "m7g.large", run.Get("InstanceType"), "fields next to a template override it")
}

// EC2 errors reach the workflow classified: throttling retryable, quota and
// capacity, refused credentials or permissions and unknown resources not
// retryable, each with EC2's code and message and what to do; server errors
// retryable. Nothing is launched by a failed create.
func TestActivityErrors(t *testing.T) {
	t.Parallel()
	failOn := func(action string, status int, code, msg string) func(string) (int, string, string) {
		return func(a string) (int, string, string) {
			if a == action {
				return status, code, msg
			}
			return 0, "", ""
		}
	}
	tests := []struct {
		name         string
		setup        func(f *fakeEC2)
		errType      string
		nonRetryable bool
		msg          []string
	}{
		{"throttled", func(f *fakeEC2) {
			f.fail = failOn("DescribeInstances", 503, "RequestLimitExceeded", "Request limit exceeded.")
		},
			provider.ErrTypeThrottled, false, []string{"aws create site west in eu-west-1: DescribeInstances: RequestLimitExceeded: Request limit exceeded."}},
		{"instance limit", func(f *fakeEC2) { f.put(siteTags("billing", "east", "db")); f.limit = 1 },
			provider.ErrTypeQuota, true, []string{"RunInstances: InstanceLimitExceeded: You have requested more instances (2) than your current instance limit of 1",
				"quota or capacity", "raise the service quota"}},
		{"no capacity", func(f *fakeEC2) {
			f.fail = failOn("RunInstances", 500, "InsufficientInstanceCapacity", "We currently do not have sufficient t3.medium capacity in the Availability Zone you requested (eu-west-1a).")
		}, provider.ErrTypeQuota, true, []string{"InsufficientInstanceCapacity: We currently do not have sufficient t3.medium capacity"}},
		{"auth failure", func(f *fakeEC2) { f.akid = "AKIDSOMEONEELSE" },
			provider.ErrTypeAuth, true, []string{"DescribeInstances: AuthFailure: AWS was not able to validate the provided access credentials",
				"check the worker's AWS credentials"}},
		{"unauthorized operation", func(f *fakeEC2) {
			f.fail = failOn("RunInstances", 403, "UnauthorizedOperation", "You are not authorized to perform this operation. Encoded authorization failure message: abc")
		}, provider.ErrTypeAuth, true, []string{"RunInstances: UnauthorizedOperation: You are not authorized", "ec2:RunInstances"}},
		{"unknown image", func(f *fakeEC2) { delete(f.amis, testAMI) },
			provider.ErrTypeConfig, true, []string{"InvalidAMIID.NotFound: The image id '[" + testAMI + "]' does not exist", "check the site's aws block"}},
		{"server error", func(f *fakeEC2) {
			f.fail = failOn("RunInstances", 500, "InternalError", "An internal error has occurred.")
		},
			provider.ErrTypeTransient, false, []string{"RunInstances: InternalError"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEC2(t, testRegion)
			c, _ := newCompute(f)
			tt.setup(f)
			a := &provider.Activities{Provider: recipe.ProviderAWS, Compute: c}
			_, err := cloudtest.RunSite(t, a, names.Create, provider.SiteInput{App: "petclinic", Site: westSite(1)})
			msg := cloudtest.AppError(t, err, tt.errType, tt.nonRetryable)
			t.Log(msg)
			for _, m := range tt.msg {
				assert.Contains(t, msg, m)
			}
			assert.NotContains(t, msg, "drover-test-secret")
			f.mu.Lock()
			for _, i := range f.instances {
				assert.Equal(t, "r-outside", i.reservation, "nothing launched")
			}
			f.mu.Unlock()
		})
	}
}

// An instance that terminates on its way up fails the create: with a
// capacity reason it is a quota error, otherwise a failed instance; neither
// is retried.
func TestLaunchFailure(t *testing.T) {
	t.Parallel()
	for reason, errType := range map[string]string{
		"Server.InsufficientInstanceCapacity": provider.ErrTypeQuota,
		"Server.InternalError":                provider.ErrTypeFailed,
	} {
		f := newFakeEC2(t, testRegion)
		f.failLaunch = reason
		c, _ := newCompute(f)
		a := &provider.Activities{Provider: recipe.ProviderAWS, Compute: c}
		_, err := cloudtest.RunSite(t, a, names.Create, provider.SiteInput{App: "petclinic", Site: westSite(1)})
		msg := cloudtest.AppError(t, err, errType, true)
		assert.Contains(t, msg, "instances not running after waiting up to 5s")
		assert.Contains(t, msg, "terminated ("+reason+": Server error while launching")
	}
}

// Every wait is bounded: instances that never leave pending fail the create
// after WaitTimeout with a retryable error that says where they are stuck.
func TestWaitIsBounded(t *testing.T) {
	t.Parallel()
	f := newFakeEC2(t, testRegion)
	f.settle = 1 << 30
	c, _ := newCompute(f)
	c.WaitTimeout = 150 * time.Millisecond
	start := time.Now()
	_, err := c.Create(context.Background(), provider.SiteInput{App: "petclinic", Site: westSite(1)})
	assert.Less(t, time.Since(start), 3*time.Second)
	require.Error(t, err)
	assert.Equal(t, provider.Transient, provider.KindOf(err))
	assert.Regexp(t, `instances not running after waiting up to 150ms: \[i-[0-9a-f]+ pending i-[0-9a-f]+ pending\]`, err.Error())
	assert.Less(t, f.count("DescribeInstances"), 100, "polls are spaced")
}

// A bad recipe or input fails before any API call, with a non-retryable
// config error that names the field: nothing can have been created.
func TestBadInputFailsBeforeAnyCall(t *testing.T) {
	t.Parallel()
	f := newFakeEC2(t, testRegion)
	c, factory := newCompute(f)
	a := &provider.Activities{Provider: recipe.ProviderAWS, Compute: c}
	site := func(mutate func(s *recipe.Site)) recipe.Site {
		s := westSite(1)
		mutate(&s)
		return s
	}
	tests := []struct {
		name string
		fn   string
		in   any
		msg  string
	}{
		{"missing image", names.Create, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) { s.AWS.AMI = "" })},
			"aws create site west: recipe: aws.ami: required unless launch_template is set"},
		{"no aws block", names.Create, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) { s.AWS = recipe.AWSCompute{} })},
			"recipe: aws: required to create instances"},
		{"bad region", names.Create, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) { s.Region = "eu-west" })},
			"recipe: region: must be an AWS region such as eu-west-1"},
		{"bad region on stop", names.Stop, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) { s.Region = "Ireland" })},
			"aws stop site west: recipe: region: must be an AWS region"},
		{"no region", names.Destroy, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) { s.Region = "" })},
			"region: required for provider aws"},
		{"bad ami and instance type", names.Create, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) {
			s.AWS.AMI, s.AWS.InstanceType = "ubuntu", "large"
		})}, "aws.ami: must be an AMI id such as ami-0123456789abcdef0; aws.instance_type: must be an instance type"},
		{"local site", names.Stop, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) { s.Provider = "local" })},
			`provider is "local"; the aws provider manages only provider "aws" sites`},
		{"no app", names.Destroy, provider.SiteInput{Site: westSite(1)}, `app "" is not a valid app name`},
		{"bad role", names.Stop, provider.SiteInput{App: "petclinic", Site: westSite(1), Roles: []string{"web"}}, `roles: unknown role "web"`},
		{"scale too far", names.Scale, provider.ScaleInput{App: "petclinic", Site: westSite(1), Instances: 101}, "instances: 101 is not 0-100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cloudtest.RunSite(t, a, tt.fn, tt.in)
			msg := cloudtest.AppError(t, err, provider.ErrTypeConfig, true)
			assert.Contains(t, msg, tt.msg)
		})
	}
	assert.Empty(t, f.actions(), "no API call")
	assert.Zero(t, factory.Load(), "no client even built")
}

// The activities derive the request key from the activity, and return the
// site state as JSON a workflow can decode; Inspect changes nothing.
func TestActivitiesLifecycle(t *testing.T) {
	t.Parallel()
	f := newFakeEC2(t, testRegion)
	c, _ := newCompute(f)
	a := &provider.Activities{Provider: recipe.ProviderAWS, Compute: c, HeartbeatInterval: time.Millisecond}
	in := provider.SiteInput{App: "petclinic", Site: westSite(1), Run: "wf-1"}
	st, err := cloudtest.RunSite(t, a, names.Create, in)
	require.NoError(t, err)
	assert.Equal(t, provider.SiteState{Provider: "aws", App: "petclinic", Site: "west", Region: testRegion,
		Instances: st.Instances, Created: st.Created}, st)
	assert.Len(t, st.Created, 2)
	assert.NotEmpty(t, f.requests("RunInstances")[0].Get("ClientToken"))

	n := len(f.actions())
	got, err := cloudtest.RunSite(t, a, names.Inspect, in)
	require.NoError(t, err)
	assert.Equal(t, st.Instances, got.Instances)
	assert.Equal(t, []string{"DescribeInstances"}, f.actions()[n:], "inspect only reads")

	for _, fn := range []string{names.Stop, names.Start, names.Destroy} {
		_, err := cloudtest.RunSite(t, a, fn, in)
		require.NoError(t, err)
	}
	st, err = cloudtest.RunSite(t, a, names.Scale, provider.ScaleInput{App: "petclinic", Site: westSite(1), Instances: 0})
	require.NoError(t, err)
	assert.Empty(t, st.Instances)
	assert.True(t, slices.Contains(f.actions(), "StartInstances"))

	assert.Equal(t, "AWSCreateSite", names.Create)
	assert.True(t, strings.HasPrefix(names.Scale, "AWS"))
}
