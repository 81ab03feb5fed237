package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The typed search attributes every Drover workflow sets, so the Temporal
// UI can filter e.g. all failovers of petclinic
// (DroverApp="petclinic" AND DroverRunbook="failover"). They must be
// registered on the server (the dev stack does; see README for a cluster).
var (
	SearchApp     = temporal.NewSearchAttributeKeyKeyword("DroverApp")
	SearchSite    = temporal.NewSearchAttributeKeyKeyword("DroverSite")
	SearchRunbook = temporal.NewSearchAttributeKeyKeyword("DroverRunbook")
	SearchState   = temporal.NewSearchAttributeKeyKeyword("DroverState")
)

// searchAttributesVersion guards the upsert so that histories recorded
// before workflows set search attributes still replay.
const searchAttributesVersion = "search-attributes"

// tagRun sets the workflow's search attributes: the app, the site it is
// about, its kind and its state (running, then the outcome). Empty values
// are left as they are. A failed upsert is logged, never fatal: the
// attributes serve the UI, not the runbook.
func tagRun(ctx workflow.Context, app, site, kind, state string) {
	if workflow.GetVersion(ctx, searchAttributesVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	var ups []temporal.SearchAttributeUpdate
	for _, kv := range []struct {
		k temporal.SearchAttributeKeyKeyword
		v string
	}{{SearchApp, app}, {SearchSite, site}, {SearchRunbook, kind}, {SearchState, state}} {
		if kv.v != "" {
			ups = append(ups, kv.k.ValueSet(kv.v))
		}
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, ups...); err != nil {
		workflow.GetLogger(ctx).Warn("search attributes not set", "error", err)
	}
}
