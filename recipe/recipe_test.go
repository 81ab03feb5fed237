package recipe

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSiteLookups(t *testing.T) {
	r := wantValid()
	r.Sites = append(r.Sites, Site{Name: "south"})

	s, ok := r.Site("west")
	assert.True(t, ok)
	assert.Equal(t, "127.0.0.3", s.Address)
	_, ok = r.Site("nort")
	assert.False(t, ok)

	standbys := r.Standbys()
	assert.Equal(t, []string{"west", "south"}, []string{standbys[0].Name, standbys[1].Name})
	standbys[0].Name = "changed"
	assert.Equal(t, "west", r.Sites[1].Name, "Standbys returns a copy")

	r.Primary = "west"
	assert.Equal(t, "east", r.Standbys()[0].Name)
}

func TestSiteHelpers(t *testing.T) {
	s := wantValid().Sites[0]
	assert.Equal(t, "drover-site-east", s.TaskQueue())
	assert.True(t, s.IsLocal())
	assert.Equal(t, "127.0.0.2:3306", s.DB.Addr())
	assert.Equal(t, "[2001:db8::1]:3306", Database{Host: "2001:db8::1", Port: 3306}.Addr())
}
