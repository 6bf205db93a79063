package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const output = `PLAY [Install beamdeploy and set the app up] ***********************************

TASK [Set hello up] ************************************************************
ok: [h1]
ok: [h3]

PLAY [Roll hello 1.2.0 through the fleet] **************************************

TASK [beamdeploy.beamdeploy.rolling_upgrade : Swap hello to 1.2.0] *************
changed: [h1]
fatal: [h2]: FAILED! => {"msg": "..."}

PLAY RECAP *********************************************************************
h1                         : ok=7    changed=1    unreachable=0    failed=0    skipped=2    rescued=0    ignored=0   
h2                         : ok=6    changed=0    unreachable=0    failed=1    skipped=1    rescued=1    ignored=0   
h3                         : ok=6    changed=0    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0   
`

func TestParseRecap(t *testing.T) {
	recap, err := parseRecap(output)
	require.NoError(t, err)
	assert.Equal(t, 1, recap["h1"]["changed"])
	assert.Equal(t, 1, recap["h2"]["failed"])
	assert.Equal(t, 1, recap["h2"]["rescued"])
	assert.Equal(t, 6, recap["h3"]["ok"])
	_, err = parseRecap("PLAY [x]\n")
	require.Error(t, err)
}

func TestRolledTo(t *testing.T) {
	assert.True(t, rolledTo(output, "h1"))
	assert.True(t, rolledTo(output, "h2"))
	assert.False(t, rolledTo(output, "h3"), "h3 ran only in the setup play")
	assert.False(t, rolledTo(output, "h"), "a prefix of a host name is not that host")
}
