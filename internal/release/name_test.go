package release

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFilename(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file, app, version string // app == "" means invalid
	}{
		{"hello-1.2.3.tar.gz", "hello", "1.2.3"},
		{"my-app-1.2.3.tar.gz", "my-app", "1.2.3"},
		{"my-app-v2.0.0-rc.1+build.5.tgz", "my-app", "v2.0.0-rc.1+build.5"},
		{"/var/tmp/upload/hello-1.0~beta.tar.gz", "hello", "1.0~beta"},
		{"hello_world-1.0.tar.gz", "hello_world", "1.0"},
		{"hello_1.2.3_linux_amd64.tar.gz", "hello", "1.2.3"},
		{"my_app_v1.2.3_linux_arm64.tgz", "my_app", "v1.2.3"},
		{"hello_1.2.3_Linux_x86_64.tar.gz", "hello", "1.2.3"},
		{"hello.tar.gz", "", ""},
		{"hello-world.tar.gz", "", ""},
		{"hello-1.0.tar", "", ""},
		{"hello-1.0.zip", "", ""},
		{"-1.0.tar.gz", "", ""},
		{".hidden-1.0.tar.gz", "", ""},
		{"hello-1.0/x.tar.gz", "", ""},
		{"hello-1.0%.tar.gz", "", ""},
		{"hello-1 0.tar.gz", "", ""},
		{"hello-1." + strings.Repeat("9", 64) + ".tar.gz", "", ""},
		{"hello_1.0_linux.tar.gz", "", ""},
		{"hello_1.0_linux_amd64-x.tar.gz", "", ""},
		{"..-1.0.tar.gz", "", ""},
		{"hello-v.tar.gz", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			app, version, err := ParseFilename(tt.file)
			if tt.app == "" {
				require.ErrorIs(t, err, ErrInvalidRelease)
				assert.ErrorContains(t, err, "want NAME-VERSION.tar.gz or NAME_VERSION_OS_ARCH.tar.gz")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.app, app)
			assert.Equal(t, tt.version, version)
		})
	}
}

func TestValidVersion(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"1", "v1.2.3", "1.0-rc.1+b~2", strings.Repeat("1", 64)} {
		assert.NoError(t, validVersion(v), v)
	}
	for _, v := range []string{"", ".", "..", ".1", "-1", "1/2", "1\\2", "1 2", "1\x00", strings.Repeat("1", 65)} {
		assert.ErrorIs(t, validVersion(v), ErrInvalidRelease, v)
	}
}

func TestParseUpload(t *testing.T) {
	tests := []struct{ filename, version, app, ver string }{
		{"hello-1.2.0.tar.gz", "", "hello", "1.2.0"},
		{"hello-1.2.0.tar.gz", "2.0.0", "hello", "2.0.0"},
		{"app.tar.gz", "1.2.3", "app", "1.2.3"},
		{"my-svc.tgz", "v4", "my-svc", "v4"},
		{"app.tar.gz", "", "", ""},
		{"app.zip", "1.0.0", "", ""},
		{"../x.tar.gz", "1.0.0", "x", "1.0.0"}, // only the base name counts
		{"app.tar.gz", "../1", "", ""},
		{".tar.gz", "1.0.0", "", ""},
	}
	for _, tt := range tests {
		app, ver, err := ParseUpload(tt.filename, tt.version)
		if tt.app == "" {
			assert.ErrorIs(t, err, ErrInvalidRelease, "%+v", tt)
			continue
		}
		if assert.NoError(t, err, "%+v", tt) {
			assert.Equal(t, tt.app, app)
			assert.Equal(t, tt.ver, ver)
		}
	}
}
