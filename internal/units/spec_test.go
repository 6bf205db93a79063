package units

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHiddenByPrivateTmp(t *testing.T) {
	assert.True(t, HiddenByPrivateTmp("/tmp/ci/main/bin/beamdeploy"))
	assert.True(t, HiddenByPrivateTmp("/var/tmp/x"))
	assert.False(t, HiddenByPrivateTmp("/usr/local/bin/beamdeploy"))
	assert.False(t, HiddenByPrivateTmp("/tmpfoo/x"))
}
