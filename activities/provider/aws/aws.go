// Package aws is Drover's provider for sites on Amazon EC2. A site is one
// database instance and an app tier of instances, launched with
// RunInstances from the site's recipe block (an AMI with an instance type,
// subnet and security groups, or a launch template) and tagged drover:app,
// drover:site, drover:role (and drover:run). Every operation finds the
// site's instances with DescribeInstances filtered by those tags, so
// creating twice launches nothing the second time, and stopping or
// terminating never touches an instance of another site. Launches carry a
// deterministic ClientToken, so a retried RunInstances whose first answer
// was lost returns the same instances instead of launching more. Waits use
// the SDK's EC2 waiters, bounded by WaitTimeout.
//
// Compute implements provider.Compute; provider.Activities with Provider
// "aws" exposes it to workflows as the activities AWSCreateSite,
// AWSInspectSite, AWSStartSite, AWSStopSite, AWSDestroySite and
// AWSScaleSite. Credentials come only from the AWS SDK's standard chain on
// the worker (environment, shared config and credentials files, SSO,
// instance or container role).
package aws

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/drover-sre/drover/activities/provider"
	"github.com/drover-sre/drover/recipe"
)

// Defaults of Compute's zero fields.
const (
	// DefaultPollInterval is the shortest delay between two DescribeInstances
	// calls of a wait (the waiter's MinDelay).
	DefaultPollInterval = 5 * time.Second
	// DefaultMaxPollInterval is the longest such delay (the waiter's MaxDelay).
	DefaultMaxPollInterval = 30 * time.Second
	// DefaultWaitTimeout bounds each wait for instances to run, stop or
	// terminate.
	DefaultWaitTimeout = 10 * time.Minute
	// maxPages bounds how many DescribeInstances pages one listing reads.
	maxPages = 50
	// pageSize is DescribeInstances' MaxResults.
	pageSize = 1000
)

// EC2API is the part of the EC2 client the provider uses; *ec2.Client
// implements it.
type EC2API interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	RunInstances(ctx context.Context, in *ec2.RunInstancesInput, opts ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	StartInstances(ctx context.Context, in *ec2.StartInstancesInput, opts ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error)
	StopInstances(ctx context.Context, in *ec2.StopInstancesInput, opts ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, opts ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
}

// ClientFunc builds the EC2 client of a region. It runs on the worker, so it
// may read credentials; nothing it reads may reach a result or an error.
type ClientFunc func(ctx context.Context, region string) (EC2API, error)

// NewClient returns an EC2 client for region, configured the AWS SDK's
// standard way (environment, shared config and credentials files, SSO,
// instance or container role), never from workflow input. A failure is a
// Config error.
func NewClient(ctx context.Context, region string) (EC2API, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
	if err != nil {
		return nil, &provider.Error{Op: "aws client", Target: region, Kind: provider.Config, Msg: "load AWS configuration: " + err.Error(), Err: err}
	}
	return ec2.NewFromConfig(cfg), nil
}

// Compute manages sites on EC2. The zero value is ready to use; it builds
// one client per region on first use and keeps it.
type Compute struct {
	// NewClient builds a region's client; nil means NewClient. Tests point
	// it at a fake EC2 endpoint.
	NewClient ClientFunc
	// PollInterval and MaxPollInterval bound the delay between two polls
	// of a wait; zero means DefaultPollInterval and DefaultMaxPollInterval.
	PollInterval, MaxPollInterval time.Duration
	// WaitTimeout bounds each wait; zero means DefaultWaitTimeout.
	WaitTimeout time.Duration

	clients provider.Clients[EC2API]
}

var _ provider.Compute = (*Compute)(nil)

// site is one operation on one site: its input, client and error context.
type site struct {
	c   *Compute
	op  string
	in  provider.SiteInput
	cl  EC2API
	req string
}

// begin checks in (before any API call) and returns the operation's site.
func (c *Compute) begin(ctx context.Context, op string, in provider.SiteInput, create bool) (*site, error) {
	cl, err := c.clients.Open(ctx, op, recipe.ProviderAWS, in, create, c.NewClient, NewClient)
	if err != nil {
		return nil, err
	}
	return &site{c: c, op: op, in: in, cl: cl, req: provider.RequestKey(ctx, in.Request)}, nil
}

// fail returns an error of the operation.
func (s *site) fail(kind provider.Kind, format string, args ...any) error {
	return &provider.Error{Op: s.op, Site: s.in.Site.Name, Target: s.in.Site.Region, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// apiError classifies an SDK error of call.
func (s *site) apiError(call string, err error) error {
	return classify(s.op, s.in.Site.Name, s.in.Site.Region, call, err)
}

// Create implements provider.Compute.
func (c *Compute) Create(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	s, err := c.begin(ctx, "aws create", in, true)
	if err != nil {
		return provider.SiteState{}, err
	}
	all, err := s.list(ctx)
	if err != nil {
		return provider.SiteState{}, err
	}
	var created []string
	want := provider.Want(in.Site)
	for _, role := range provider.Roles {
		live := provider.Live(all, role)
		if need := want[role] - len(live); need > 0 {
			ids, err := s.launch(ctx, role, need, live)
			if err != nil {
				return provider.SiteState{}, err
			}
			created = append(created, ids...)
		}
	}
	if err := s.waitRunning(ctx, provider.Union(created, provider.IDsIn(all, provider.StatePending))); err != nil {
		return provider.SiteState{}, err
	}
	return s.state(ctx, created, nil)
}

// Inspect implements provider.Compute.
func (c *Compute) Inspect(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	s, err := c.begin(ctx, "aws inspect", in, false)
	if err != nil {
		return provider.SiteState{}, err
	}
	return s.state(ctx, nil, nil)
}

// Start implements provider.Compute with StartInstances on the stopped
// instances of in.Roles, then waits until every selected instance runs.
func (c *Compute) Start(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	s, err := c.begin(ctx, "aws start", in, false)
	if err != nil {
		return provider.SiteState{}, err
	}
	sel, err := s.selected(ctx)
	if err != nil {
		return provider.SiteState{}, err
	}
	if stopping := provider.IDsIn(sel, provider.StateStopping); len(stopping) > 0 {
		// EC2 cannot start an instance that is still stopping.
		if err := s.waitStopped(ctx, stopping); err != nil {
			return provider.SiteState{}, err
		}
		if sel, err = s.selected(ctx); err != nil {
			return provider.SiteState{}, err
		}
	}
	stopped := provider.IDsIn(sel, provider.StateStopped)
	if len(stopped) > 0 {
		if _, err := s.cl.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: stopped}); err != nil {
			return provider.SiteState{}, s.apiError("StartInstances", err)
		}
	}
	if err := s.waitRunning(ctx, provider.Union(stopped, provider.IDsIn(sel, provider.StatePending))); err != nil {
		return provider.SiteState{}, err
	}
	return s.state(ctx, nil, stopped)
}

// Stop implements provider.Compute: pending instances are first awaited
// (EC2 cannot stop them yet), then StopInstances (with Force when asked)
// goes to every running instance of in.Roles, and the wait lasts until all
// of them are stopped.
func (c *Compute) Stop(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	s, err := c.begin(ctx, "aws stop", in, false)
	if err != nil {
		return provider.SiteState{}, err
	}
	sel, err := s.selected(ctx)
	if err != nil {
		return provider.SiteState{}, err
	}
	if pending := provider.IDsIn(sel, provider.StatePending); len(pending) > 0 {
		if err := s.waitRunning(ctx, pending); err != nil {
			return provider.SiteState{}, err
		}
	}
	running := provider.IDsIn(sel, provider.StateRunning, provider.StatePending)
	if len(running) > 0 {
		if _, err := s.cl.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: running, Force: aws.Bool(in.Force)}); err != nil {
			return provider.SiteState{}, s.apiError("StopInstances", err)
		}
	}
	if err := s.waitStopped(ctx, provider.Union(running, provider.IDsIn(sel, provider.StateStopping))); err != nil {
		return provider.SiteState{}, err
	}
	return s.state(ctx, nil, running)
}

// Destroy implements provider.Compute with TerminateInstances on the
// selected instances, then waits until they are terminated.
func (c *Compute) Destroy(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	s, err := c.begin(ctx, "aws destroy", in, false)
	if err != nil {
		return provider.SiteState{}, err
	}
	sel, err := s.selected(ctx)
	if err != nil {
		return provider.SiteState{}, err
	}
	if in.Run != "" {
		sel = slices.DeleteFunc(sel, func(i provider.Instance) bool { return i.Run != in.Run })
	}
	terminated, err := s.terminate(ctx, sel)
	if err != nil {
		return provider.SiteState{}, err
	}
	return s.state(ctx, nil, terminated)
}

// Scale implements provider.Compute.
func (c *Compute) Scale(ctx context.Context, in provider.ScaleInput) (provider.SiteState, error) {
	const op = "aws scale"
	if err := provider.CheckScale(op, recipe.ProviderAWS, in); err != nil {
		return provider.SiteState{}, err
	}
	s, err := c.begin(ctx, op, in.SiteInput(), false)
	if err != nil {
		return provider.SiteState{}, err
	}
	all, err := s.list(ctx)
	if err != nil {
		return provider.SiteState{}, err
	}
	plan, err := provider.PlanScale(op, recipe.ProviderAWS, in, all)
	if err != nil {
		return provider.SiteState{}, err
	}
	switch {
	case plan.Add > 0:
		created, err := s.launch(ctx, provider.RoleApp, plan.Add, plan.Apps)
		if err != nil {
			return provider.SiteState{}, err
		}
		if err := s.waitRunning(ctx, provider.Union(created, provider.IDsIn(plan.Apps, provider.StatePending))); err != nil {
			return provider.SiteState{}, err
		}
		return s.state(ctx, created, nil)
	case len(plan.Remove) > 0:
		terminated, err := s.terminate(ctx, plan.Remove)
		if err != nil {
			return provider.SiteState{}, err
		}
		return s.state(ctx, nil, terminated)
	}
	return s.state(ctx, nil, nil)
}

// list returns the site's instances that are not terminated, found by the
// drover:app and drover:site tags and checked again on the client side: an
// instance whose tags do not match exactly is never returned.
func (s *site) list(ctx context.Context) ([]provider.Instance, error) {
	in := &ec2.DescribeInstancesInput{
		Filters: []types.Filter{
			{Name: aws.String("tag:" + provider.TagApp), Values: []string{s.in.App}},
			{Name: aws.String("tag:" + provider.TagSite), Values: []string{s.in.Site.Name}},
			{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}},
		},
		MaxResults: aws.Int32(pageSize),
	}
	var out []provider.Instance
	p := ec2.NewDescribeInstancesPaginator(s.cl, in)
	for page := 0; p.HasMorePages(); page++ {
		if page == maxPages {
			return nil, s.fail(provider.Transient, "more than %d pages of instances tagged for this site", maxPages)
		}
		res, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.apiError("DescribeInstances", err)
		}
		for _, r := range res.Reservations {
			for _, i := range r.Instances {
				if x, ok := s.instance(i); ok {
					out = append(out, x)
				}
			}
		}
	}
	provider.Sort(out)
	return out, nil
}

// instance converts an EC2 instance, reporting false unless it carries
// this site's tags and a known role.
func (s *site) instance(i types.Instance) (provider.Instance, bool) {
	tags := map[string]string{}
	for _, t := range i.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	role := tags[provider.TagRole]
	if tags[provider.TagApp] != s.in.App || tags[provider.TagSite] != s.in.Site.Name || !slices.Contains(provider.Roles, role) {
		return provider.Instance{}, false
	}
	x := provider.Instance{
		ID: aws.ToString(i.InstanceId), Name: tags["Name"], Role: role, Run: tags[provider.TagRun],
		PrivateIP: aws.ToString(i.PrivateIpAddress), PublicIP: aws.ToString(i.PublicIpAddress),
		LaunchedAt: aws.ToTime(i.LaunchTime),
	}
	if i.State != nil {
		x.ProviderState = string(i.State.Name)
	}
	x.State = state(x.ProviderState)
	if r := i.StateReason; r != nil && x.State != provider.StateRunning {
		x.Reason = aws.ToString(r.Message)
		if code := aws.ToString(r.Code); code != "" {
			x.Reason = code + ": " + x.Reason
		}
	}
	return x, x.ID != ""
}

// state maps an EC2 instance state name to the provider's.
func state(name string) string {
	switch types.InstanceStateName(name) {
	case types.InstanceStateNamePending:
		return provider.StatePending
	case types.InstanceStateNameRunning:
		return provider.StateRunning
	case types.InstanceStateNameStopping:
		return provider.StateStopping
	case types.InstanceStateNameStopped:
		return provider.StateStopped
	case types.InstanceStateNameShuttingDown:
		return provider.StateTerminating
	case types.InstanceStateNameTerminated:
		return provider.StateTerminated
	}
	return provider.StateUnknown
}

// selected lists the instances of the input's roles.
func (s *site) selected(ctx context.Context) ([]provider.Instance, error) {
	all, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	return provider.OfRoles(all, s.in.Roles), nil
}

// launch runs need instances of role with one RunInstances call (all or
// nothing: MinCount = MaxCount) and returns their ids. Its ClientToken is
// derived from the site, role, run, request and the live instances of the
// role, so a retry of the same request returns the same instances.
func (s *site) launch(ctx context.Context, role string, need int, live []provider.Instance) ([]string, error) {
	a, site := s.in.Site.AWS, s.in.Site
	name := fmt.Sprintf("drover-%s-%s-%s", s.in.App, site.Name, role)
	tags := []types.Tag{
		{Key: aws.String("Name"), Value: aws.String(name)},
		{Key: aws.String(provider.TagApp), Value: aws.String(s.in.App)},
		{Key: aws.String(provider.TagSite), Value: aws.String(site.Name)},
		{Key: aws.String(provider.TagRole), Value: aws.String(role)},
	}
	if s.in.Run != "" {
		tags = append(tags, types.Tag{Key: aws.String(provider.TagRun), Value: aws.String(s.in.Run)})
	}
	ids := provider.IDs(live)
	slices.Sort(ids)
	token := provider.Token(append([]string{"aws", s.in.App, site.Name, role, s.in.Run, s.req, fmt.Sprint(need)}, ids...)...)
	in := &ec2.RunInstancesInput{
		MinCount:    aws.Int32(int32(need)),
		MaxCount:    aws.Int32(int32(need)),
		ClientToken: aws.String(token),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags},
		},
	}
	if a.AMI != "" {
		in.ImageId = aws.String(a.AMI)
	}
	if a.InstanceType != "" {
		in.InstanceType = types.InstanceType(a.InstanceType)
	}
	if a.SubnetID != "" {
		in.SubnetId = aws.String(a.SubnetID)
	}
	if len(a.SecurityGroupIDs) > 0 {
		in.SecurityGroupIds = slices.Clone(a.SecurityGroupIDs)
	}
	if a.KeyName != "" {
		in.KeyName = aws.String(a.KeyName)
	}
	if a.LaunchTemplate != "" {
		lt := &types.LaunchTemplateSpecification{Version: aws.String(a.LaunchTemplateVersion)}
		if a.LaunchTemplateVersion == "" {
			lt.Version = aws.String(recipe.DefaultLaunchTemplateVersion)
		}
		if launchTemplateID(a.LaunchTemplate) {
			lt.LaunchTemplateId = aws.String(a.LaunchTemplate)
		} else {
			lt.LaunchTemplateName = aws.String(a.LaunchTemplate)
		}
		in.LaunchTemplate = lt
	}
	out, err := s.cl.RunInstances(ctx, in)
	if err != nil {
		return nil, s.apiError("RunInstances", err)
	}
	var got []string
	for _, i := range out.Instances {
		got = append(got, aws.ToString(i.InstanceId))
	}
	if len(got) != need {
		return got, s.fail(provider.Transient, "RunInstances returned %d instances, want %d", len(got), need)
	}
	return got, nil
}

// launchTemplateIDRE matches a launch template id, as opposed to a name.
var launchTemplateIDRE = regexp.MustCompile(`^lt-([0-9a-f]{8}|[0-9a-f]{17})$`)

// launchTemplateID reports whether s is a launch template id (lt-…) rather
// than a name.
func launchTemplateID(s string) bool { return launchTemplateIDRE.MatchString(s) }

// terminate sends TerminateInstances for the instances that are not yet
// terminating and waits until all of them are terminated. It returns the
// ids it asked to terminate.
func (s *site) terminate(ctx context.Context, is []provider.Instance) ([]string, error) {
	var ids, all []string
	for _, i := range is {
		all = append(all, i.ID)
		if i.Live() {
			ids = append(ids, i.ID)
		}
	}
	if len(ids) > 0 {
		if _, err := s.cl.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
			return nil, s.apiError("TerminateInstances", err)
		}
	}
	if len(all) == 0 {
		return nil, nil
	}
	w := ec2.NewInstanceTerminatedWaiter(s.cl, func(o *ec2.InstanceTerminatedWaiterOptions) {
		o.MinDelay, o.MaxDelay = s.c.delays()
	})
	err := s.wait(ctx, "terminated", all, func(ctx context.Context, timeout time.Duration) error {
		return w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: all}, timeout)
	})
	return ids, err
}

// waitStopped waits until every instance in ids is stopped.
func (s *site) waitStopped(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	w := ec2.NewInstanceStoppedWaiter(s.cl, func(o *ec2.InstanceStoppedWaiterOptions) {
		o.MinDelay, o.MaxDelay = s.c.delays()
	})
	return s.wait(ctx, "stopped", ids, func(ctx context.Context, timeout time.Duration) error {
		return w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, timeout)
	})
}

// waitRunning waits until every instance in ids runs.
func (s *site) waitRunning(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	w := ec2.NewInstanceRunningWaiter(s.cl, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = s.c.delays()
	})
	return s.wait(ctx, "running", ids, func(ctx context.Context, timeout time.Duration) error {
		return w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, timeout)
	})
}

// wait runs one SDK waiter for ids with the configured bound. When it
// fails, it describes the instances once more to say which are not yet
// `want` and why: an instance that terminated on its way up is Failed (or
// Quota when EC2 gave a capacity reason), a wait that ran out Transient.
func (s *site) wait(ctx context.Context, want string, ids []string, run func(ctx context.Context, timeout time.Duration) error) error {
	timeout := s.c.WaitTimeout
	if timeout <= 0 {
		timeout = DefaultWaitTimeout
	}
	err := run(ctx, timeout)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return s.fail(provider.Transient, "waiting for %v to be %s: %v", ids, want, ctx.Err())
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return s.apiError("DescribeInstances", err)
	}
	// Report the states the waiter gave up on.
	out, derr := s.cl.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if derr != nil {
		return s.fail(provider.Transient, "instances %v not %s (%v), and describing them failed: %v", ids, want, err, derr)
	}
	kind := provider.Transient
	var states []string
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			x, _ := s.instance(i)
			x.ID = aws.ToString(i.InstanceId)
			if x.ProviderState == want {
				continue
			}
			desc := x.ID + " " + x.ProviderState
			if x.Reason != "" {
				desc += " (" + x.Reason + ")"
			}
			states = append(states, desc)
			if want == "running" && !x.Live() {
				kind = max(kind, reasonKind(x.Reason))
			}
		}
	}
	return s.fail(kind, "instances not %s after waiting up to %s: %v", want, timeout, states)
}

// delays returns the waiters' MinDelay and MaxDelay.
func (c *Compute) delays() (time.Duration, time.Duration) {
	lo, hi := c.PollInterval, c.MaxPollInterval
	if lo <= 0 {
		lo = DefaultPollInterval
	}
	if hi <= 0 {
		hi = max(DefaultMaxPollInterval, lo)
	}
	return lo, max(hi, lo)
}

// state lists the site and returns its state with what this call did.
// Instances this call created are also described by id: right after a
// launch, a tag-filtered DescribeInstances may not show them yet.
func (s *site) state(ctx context.Context, created, changed []string) (provider.SiteState, error) {
	all, err := s.list(ctx)
	if err != nil {
		return provider.SiteState{}, err
	}
	var missing []string
	for _, id := range created {
		if !slices.ContainsFunc(all, func(i provider.Instance) bool { return i.ID == id }) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		out, err := s.cl.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: missing})
		if err != nil {
			return provider.SiteState{}, s.apiError("DescribeInstances", err)
		}
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				if x, ok := s.instance(i); ok && x.State != provider.StateTerminated {
					all = append(all, x)
				}
			}
		}
		provider.Sort(all)
	}
	return provider.SiteState{
		Provider: recipe.ProviderAWS, App: s.in.App, Site: s.in.Site.Name, Region: s.in.Site.Region,
		Instances: all, Created: created, Changed: changed,
	}, nil
}
