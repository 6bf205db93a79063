package parent

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUnitFromCgroup(t *testing.T) {
	tests := map[string]string{
		"0::/system.slice/hello@blue.service\n":                                           "hello@blue.service",
		"12:pids:/system.slice\n1:name=systemd:/system.slice/hello@green.service\n0::/\n": "hello@green.service",
		"0::/system.slice/hello@blue.service/app\n":                                       "hello@blue.service",
		"0::/user.slice/user-0.slice/session-1.scope\n":                                   "",
		"garbage": "",
	}
	for in, want := range tests {
		assert.Equal(t, want, unitFromCgroup(in), in)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		p    peer
		want access
	}{
		{"root", peer{UID: 0, Groups: []int{0}}, access{deploy: true}},
		{"own instance", peer{UID: 65534, Groups: []int{65534}, Unit: "hello@blue.service"}, access{instance: true}},
		{"root in own instance", peer{UID: 0, Unit: "hello@green.service"}, access{deploy: true, instance: true}},
		{"other app's instance", peer{UID: 65534, Unit: "other@blue.service"}, access{}},
		{"lookalike unit", peer{UID: 65534, Unit: "hello@red.service"}, access{}},
		{"user", peer{UID: 1000, Groups: []int{1000}}, access{}},
		{"unidentified", peer{UID: 0, Err: assert.AnError}, access{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, classify("hello", tt.p))
		})
	}
}
