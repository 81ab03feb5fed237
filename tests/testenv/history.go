package testenv

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"
)

// StoredHistory returns every event of a workflow run as the server stores
// it, concatenated in protobuf wire form — payload data as raw bytes, not
// base64 — so a test can search it for a plaintext that must not be there.
// Read it with a client without a payload codec to see what the server
// sees.
func StoredHistory(ctx context.Context, c client.Client, id, runID string) ([]byte, error) {
	var all []byte
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		b, err := proto.Marshal(ev)
		if err != nil {
			return nil, err
		}
		all = append(all, b...)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("history of %s is empty", id)
	}
	return all, nil
}
