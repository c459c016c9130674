package strom

import "github.com/strom-dev/strom/internal/minicluster"

// NetworkChannels is how many channels the shuffle registry of c's embedded
// cluster holds right now, so a test can check that restarts release the
// channels of the attempts they replace (recovery_chaos_test.go).
func NetworkChannels(c *JobClient) int { return c.mc.Registry().Len() }

// RemoteChannels is how many channels the job's cluster's data planes
// hold open (both ends count), and how many connections.
func RemoteChannels(c *JobClient) (channels, conns int) {
	for _, d := range c.mc.DataPlanes() {
		channels += d.Len()
		conns += d.Conns()
	}
	return channels, conns
}

// ConfigureCluster lets a test adjust env's embedded cluster (heartbeat
// and slot request timeouts) before it starts.
func ConfigureCluster(env *Environment, f func(*minicluster.Config)) { env.seam.cluster = f }

// Cluster is the job's embedded cluster, for tests that kill, freeze or
// add TaskManagers.
func Cluster(c *JobClient) *minicluster.MiniCluster { return c.mc }
