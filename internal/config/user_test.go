package config_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/beamdeploy/beamdeploy/internal/config"
)

func TestRunAs(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		name string
		app  string
		user string
		want config.RunAs
		root bool
	}{
		{"dynamic", "hello", config.DynamicUser,
			config.RunAs{User: "bd-hello", Dynamic: true, StateDirectory: "beamdeploy/hello/data"}, false},
		{"dynamic, longest app name that fits", strings.Repeat("x", 28), config.DynamicUser,
			config.RunAs{User: "bd-" + strings.Repeat("x", 28), Dynamic: true, StateDirectory: "beamdeploy/" + strings.Repeat("x", 28) + "/data"}, false},
		{"dynamic, app name with a dot", "my-app.v2", config.DynamicUser,
			config.RunAs{User: "bd_my-app_v2_562fa27681", Dynamic: true, StateDirectory: "beamdeploy/my-app.v2/data"}, false},
		{"dynamic, app name too long", long, config.DynamicUser,
			config.RunAs{User: "bd_aaaaaaaaaaaaaaaa_" + "ffe054fe7a", Dynamic: true, StateDirectory: "beamdeploy/" + long + "/data"}, false},
		{"no user: a config written before dynamic users runs as root", "hello", "", config.RunAs{}, true},
		{"root", "hello", "root", config.RunAs{}, true},
		{"static user", "hello", "www-data", config.RunAs{User: "www-data"}, false},
		{"a static user named like a dynamic one stays static", "hello", "bd-hello", config.RunAs{User: "bd-hello"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := config.Config{App: tt.app, User: tt.user}.RunAs()
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.root, got.Root())
		})
	}
}

// systemd's rule for a dynamic user's name (valid_user_group_name, strict):
// at most 31 characters of [a-zA-Z0-9_-], not starting with a digit or '-'.
var systemdUserName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_-]{0,30}$`)

// Every valid app name gets a user name systemd accepts, and no two app
// names share one (both colours of one app share theirs).
func TestDynamicUserNameValidAndDistinct(t *testing.T) {
	apps := []string{"hello", "0", "9lives", "a", "a.b", "a-b", "a_b", "a..b", "a__b", "x.",
		strings.Repeat("a", 28), strings.Repeat("a", 29), strings.Repeat("a", 64), strings.Repeat("a", 63) + "b",
		strings.Repeat("a", 16) + ".x", strings.Repeat("a", 16) + "_x", "bd-hello", "bd_hello"}
	seen := map[string]string{}
	for _, app := range apps {
		if !assert.NoError(t, config.ValidateApp(app), "test input") {
			continue
		}
		u := config.DynamicUserName(app)
		assert.Regexp(t, systemdUserName, u, "app %q", app)
		if other, dup := seen[u]; dup {
			t.Errorf("apps %q and %q both get user %q", other, app, u)
		}
		seen[u] = app
	}
}
