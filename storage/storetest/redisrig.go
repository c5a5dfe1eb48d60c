package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The rig: a real Redis Cluster (3 masters, 3 replicas) and a real Sentinel setup
// (1 primary, 1 replica, 3 sentinels) on free loopback ports, in a temporary directory,
// with no persistence, for the tests that must see what a single redis-server hides:
// CROSSSLOT errors, MOVED redirects, one node's view of KEYS/SCAN, failovers.
// redis-server and redis-cli (redis-tools) must be installed; .ci/with-services
// installs them.

// SentinelMaster is the name the rig's sentinels monitor the primary under.
const SentinelMaster = "mayfly"

// Timeouts short enough that a failover in a test takes seconds: a node or primary that
// does not answer for this long is failed over.
const (
	clusterNodeTimeout = 2000 // ms, cluster-node-timeout
	sentinelDownAfter  = 1000 // ms, sentinel down-after-milliseconds
	sentinelFailover   = 5000 // ms, sentinel failover-timeout
	rigStartTimeout    = 60 * time.Second
)

// RedisNode is one redis-server (or sentinel) process of a rig.
type RedisNode struct {
	Addr string // 127.0.0.1:port
	PID  int    // 0 once the rig has killed it and not restarted it
	Role string // "master", "replica" or "sentinel", as last seen by the rig

	args []string
	pass string // requirepass, for the rig's own redis-cli
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  string
}

// rig holds the processes of one Cluster or Sentinel setup.
type rig struct {
	dir   string
	mu    sync.Mutex
	nodes []*RedisNode
}

// Cluster is a running Redis Cluster of 3 masters and 3 replicas.
type Cluster struct{ rig }

// Sentinel is a running primary, its replica and the 3 sentinels that watch them.
type Sentinel struct {
	rig
	Sentinels []*RedisNode
	opts      SentinelOptions
}

// SentinelOptions change the Sentinel setup NewSentinelWith starts.
type SentinelOptions struct {
	// Password is the primary's and replica's requirepass (and masterauth), which the
	// sentinels are given (auth-pass); the sentinels themselves have none.
	Password string
}

// StartCluster starts a Redis Cluster for one test and stops it when the test ends. It
// fails the test if redis-server or redis-cli is missing: callers that may run without
// them check RigAvailable first.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rigStartTimeout)
	defer cancel()
	c, err := NewCluster(ctx, tb.TempDir())
	if err != nil {
		tb.Fatalf("starting a Redis Cluster: %v", err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// StartSentinel starts a Sentinel setup for one test and stops it when the test ends.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	return StartSentinelWith(tb, SentinelOptions{})
}

// StartSentinelWith is StartSentinel with options.
func StartSentinelWith(tb testing.TB, o SentinelOptions) *Sentinel {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rigStartTimeout)
	defer cancel()
	s, err := NewSentinelWith(ctx, tb.TempDir(), o)
	if err != nil {
		tb.Fatalf("starting a Redis Sentinel setup: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// RigAvailable reports why the rig cannot start here ("" when it can).
func RigAvailable() string {
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " is not installed (apt-get install redis-server redis-tools; make test does)"
		}
	}
	return ""
}

// RequireRig skips tb when the rig cannot start here, saying why and how to enable it,
// or fails it where Redis tests must run (RequireRedis: make test, CI).
func RequireRig(tb testing.TB) {
	tb.Helper()
	if why := RigAvailable(); why != "" {
		if RequireRedis() {
			tb.Fatal(why)
		}
		tb.Skipf("%s; make test installs it and runs this", why)
	}
}

// NewCluster starts a Redis Cluster of 3 masters and 3 replicas with its files in dir
// and returns once every node says cluster_state:ok, all 16384 slots are served and
// every replica is in sync. Stop stops it.
func NewCluster(ctx context.Context, dir string) (*Cluster, error) {
	if why := RigAvailable(); why != "" {
		return nil, errors.New(why)
	}
	return startRig(ctx, func() *Cluster { return &Cluster{rig{dir: dir}} })
}

// startRig starts a rig that build makes, stopping it and starting a new one when it
// fails: a free port can be taken between choosing and binding it. Three tries.
func startRig[R interface {
	start(context.Context) error
	Stop()
}](ctx context.Context, build func() R) (R, error) {
	var lastErr error
	for range 3 {
		r := build()
		err := r.start(ctx)
		if err == nil {
			return r, nil
		}
		r.Stop()
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	var none R
	return none, lastErr
}

func (c *Cluster) start(ctx context.Context) error {
	// Each node also listens on port+10000 for the cluster bus.
	ports, err := freePorts(6, 10000)
	if err != nil {
		return err
	}
	var addrs []string
	for i, p := range ports {
		d := filepath.Join(c.dir, fmt.Sprintf("cluster-%d", p))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		n := &RedisNode{
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(p)),
			args: append(serverArgs(p, d),
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(d, "nodes.conf"),
				"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeout),
				// A replica whose link was down during the test still takes over.
				"--cluster-replica-validity-factor", "0",
			),
			log: filepath.Join(d, "redis.log"),
		}
		if i < 3 {
			n.Role = "master"
		} else {
			n.Role = "replica"
		}
		c.nodes = append(c.nodes, n)
		addrs = append(addrs, n.Addr)
	}
	for _, n := range c.nodes {
		if err := n.startProcess(); err != nil {
			return err
		}
	}
	for _, n := range c.nodes {
		if err := waitUp(ctx, n); err != nil {
			return err
		}
	}
	// redis-cli makes the first three given masters and the last three their replicas.
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("redis-cli --cluster create: %v: %s", err, lastLines(out))
	}
	return c.WaitHealthy(ctx)
}

// WaitHealthy waits until every running node of the cluster says cluster_state:ok with
// all slots served, and every running replica's link to its master is up. The failover
// tests call it after killing and restarting nodes.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	return poll(ctx, func() error {
		for _, n := range c.running() {
			info, err := cli(ctx, n.Addr, "cluster", "info")
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
				return fmt.Errorf("%s: cluster not ok yet", n.Addr)
			}
			if err := replicaInSync(ctx, n); err != nil {
				return err
			}
		}
		// Every node must agree on who serves each slot, or a client may be sent to a
		// node that still thinks another serves it.
		var first string
		for i, n := range c.running() {
			out, err := cli(ctx, n.Addr, "cluster", "slots")
			if err != nil {
				return err
			}
			view := fmt.Sprint(parseSlots(out))
			if i == 0 {
				first = view
			} else if view != first {
				return fmt.Errorf("%s does not agree on the slots' masters yet", n.Addr)
			}
		}
		return nil
	})
}

// slotRange is one range of CLUSTER SLOTS and the address of its master.
type slotRange struct {
	lo, hi int
	master string
}

// parseSlots reads CLUSTER SLOTS as redis-cli prints it to a pipe, one value a line:
// each range is its first and last slot, then the master's host, port and id, then
// each replica's. A range starts where two numbers are followed by an address.
func parseSlots(out string) []slotRange {
	var rs []slotRange
	f := strings.Fields(out)
	for i := 0; i+3 < len(f); i++ {
		lo, err1 := strconv.Atoi(f[i])
		hi, err2 := strconv.Atoi(f[i+1])
		if err1 != nil || err2 != nil || net.ParseIP(f[i+2]) == nil {
			continue
		}
		rs = append(rs, slotRange{lo, hi, net.JoinHostPort(f[i+2], f[i+3])})
		i += 3
	}
	slices.SortFunc(rs, func(a, b slotRange) int { return a.lo - b.lo })
	return rs
}

// URL is the store's setting for this cluster: its nodes' addresses, comma-separated.
func (c *Cluster) URL() string {
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.Addr)
	}
	return strings.Join(addrs, ",")
}

// Nodes returns every node of the cluster, with Role refreshed from the nodes
// themselves (killed nodes keep their last role and have PID 0).
func (c *Cluster) Nodes(ctx context.Context) []RedisNode {
	c.refreshRoles(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]RedisNode, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = RedisNode{Addr: n.Addr, PID: n.PID, Role: n.Role}
	}
	return out
}

// Masters returns the running nodes that are masters now.
func (c *Cluster) Masters(ctx context.Context) []RedisNode { return c.withRole(ctx, "master") }

// Replicas returns the running nodes that are replicas now.
func (c *Cluster) Replicas(ctx context.Context) []RedisNode { return c.withRole(ctx, "replica") }

func (c *Cluster) withRole(ctx context.Context, role string) []RedisNode {
	var out []RedisNode
	for _, n := range c.Nodes(ctx) {
		if n.PID != 0 && n.Role == role {
			out = append(out, n)
		}
	}
	return out
}

// MasterOf returns the running node that serves slot now.
func (c *Cluster) MasterOf(ctx context.Context, slot int) (RedisNode, error) {
	for _, n := range c.running() {
		out, err := cli(ctx, n.Addr, "cluster", "slots")
		if err != nil {
			continue
		}
		for _, r := range parseSlots(out) {
			if r.lo <= slot && slot <= r.hi {
				for _, m := range c.Nodes(ctx) {
					if m.Addr == r.master {
						return m, nil
					}
				}
				return RedisNode{}, fmt.Errorf("slot %d is served by %s, not a node of the rig", slot, r.master)
			}
		}
		return RedisNode{}, fmt.Errorf("no node serves slot %d", slot)
	}
	return RedisNode{}, errors.New("no node of the cluster answers")
}

// KillPrimary kills (SIGKILL) the master that serves slot and returns it. Its replica
// takes over after about cluster-node-timeout (2s); WaitHealthy waits for that.
func (c *Cluster) KillPrimary(ctx context.Context, slot int) (RedisNode, error) {
	m, err := c.MasterOf(ctx, slot)
	if err != nil {
		return RedisNode{}, err
	}
	return m, c.Kill(m.Addr)
}

// Sentinel's primary and replica.

// NewSentinel starts a primary, a replica of it and 3 sentinels monitoring it as
// SentinelMaster (quorum 2), with their files in dir, and returns once every sentinel
// names the primary and knows the replica and the other two sentinels. Stop stops it.
func NewSentinel(ctx context.Context, dir string) (*Sentinel, error) {
	return NewSentinelWith(ctx, dir, SentinelOptions{})
}

// NewSentinelWith is NewSentinel with options.
func NewSentinelWith(ctx context.Context, dir string, o SentinelOptions) (*Sentinel, error) {
	if why := RigAvailable(); why != "" {
		return nil, errors.New(why)
	}
	return startRig(ctx, func() *Sentinel { return &Sentinel{rig: rig{dir: dir}, opts: o} })
}

func (s *Sentinel) start(ctx context.Context) error {
	ports, err := freePorts(5, 0)
	if err != nil {
		return err
	}
	primary := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	for i, p := range ports {
		d := filepath.Join(s.dir, fmt.Sprintf("sentinel-%d", p))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		n := &RedisNode{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), log: filepath.Join(d, "redis.log")}
		auth := []string{}
		if pw := s.opts.Password; pw != "" {
			n.pass = pw
			auth = []string{"--requirepass", pw, "--masterauth", pw}
		}
		switch i {
		case 0:
			n.Role, n.args = "master", append(serverArgs(p, d), auth...)
		case 1:
			n.Role = "replica"
			n.args = append(append(serverArgs(p, d), auth...), "--replicaof", "127.0.0.1", strconv.Itoa(ports[0]))
		default:
			// A sentinel rewrites its config file: it must be its own, writable.
			conf := filepath.Join(d, "sentinel.conf")
			text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n", p, d) +
				fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n", SentinelMaster, ports[0]) +
				fmt.Sprintf("sentinel down-after-milliseconds %s %d\n", SentinelMaster, sentinelDownAfter) +
				fmt.Sprintf("sentinel failover-timeout %s %d\n", SentinelMaster, sentinelFailover) +
				fmt.Sprintf("sentinel parallel-syncs %s 1\n", SentinelMaster)
			if pw := s.opts.Password; pw != "" {
				text += fmt.Sprintf("sentinel auth-pass %s %s\n", SentinelMaster, strconv.Quote(pw))
			}
			n.pass = ""
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				return err
			}
			n.Role = "sentinel"
			n.args = []string{conf, "--sentinel", "--logfile", n.log, "--daemonize", "no"}
		}
		s.nodes = append(s.nodes, n)
	}
	s.Sentinels = s.nodes[2:]
	for _, n := range s.nodes[:2] {
		if err := n.startProcess(); err != nil {
			return err
		}
	}
	for _, n := range s.nodes[:2] {
		if err := waitUp(ctx, n); err != nil {
			return err
		}
	}
	// The replica in sync before the sentinels start, so that their first look at the
	// primary finds it.
	if err := poll(ctx, func() error { return replicaInSync(ctx, s.nodes[1]) }); err != nil {
		return err
	}
	for _, n := range s.Sentinels {
		if err := n.startProcess(); err != nil {
			return err
		}
	}
	for _, n := range s.Sentinels {
		if err := waitUp(ctx, n); err != nil {
			return err
		}
	}
	return s.waitAgree(ctx, primary)
}

// waitAgree waits until every running sentinel names want as the primary and sees at
// least one replica and the other sentinels.
func (s *Sentinel) waitAgree(ctx context.Context, want string) error {
	return poll(ctx, func() error {
		for _, n := range s.Sentinels {
			if s.pid(n) == 0 {
				continue
			}
			got, err := cli(ctx, n.Addr, "sentinel", "get-master-addr-by-name", SentinelMaster)
			if err != nil {
				return err
			}
			if addr := strings.Join(strings.Fields(got), ":"); addr != want {
				return fmt.Errorf("sentinel %s names %s, not %s", n.Addr, addr, want)
			}
			master, err := cli(ctx, n.Addr, "sentinel", "master", SentinelMaster)
			if err != nil {
				return err
			}
			if field(master, "num-slaves") < 1 || field(master, "num-other-sentinels") < len(s.Sentinels)-1 {
				return fmt.Errorf("sentinel %s does not know the replica and the other sentinels yet", n.Addr)
			}
		}
		return nil
	})
}

// URL is the store's setting for this setup: redis://[:password@]first-sentinel/0?master_name=...,
// then the other sentinels' addresses.
func (s *Sentinel) URL() string {
	auth := ""
	if s.opts.Password != "" {
		auth = url.UserPassword("", s.opts.Password).String() + "@"
	}
	u := "redis://" + auth + s.Sentinels[0].Addr + "/0?master_name=" + SentinelMaster
	for _, n := range s.Sentinels[1:] {
		u += "," + n.Addr
	}
	return u
}

// Primary returns the node the sentinels name as the primary now.
func (s *Sentinel) Primary(ctx context.Context) (RedisNode, error) {
	var lastErr error
	for _, n := range s.Sentinels {
		if s.pid(n) == 0 {
			continue
		}
		got, err := cli(ctx, n.Addr, "sentinel", "get-master-addr-by-name", SentinelMaster)
		if err != nil {
			lastErr = err
			continue
		}
		addr := strings.Join(strings.Fields(got), ":")
		for _, m := range s.nodes[:2] {
			if m.Addr == addr {
				s.mu.Lock()
				defer s.mu.Unlock()
				return RedisNode{Addr: m.Addr, PID: m.PID, Role: "master"}, nil
			}
		}
		return RedisNode{}, fmt.Errorf("sentinel %s names %q, not a node of the rig", n.Addr, got)
	}
	return RedisNode{}, fmt.Errorf("no sentinel answers: %v", lastErr)
}

// Nodes returns the primary and replica as started (Role as the rig started them), then
// the sentinels.
func (s *Sentinel) Nodes() []RedisNode {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RedisNode, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = RedisNode{Addr: n.Addr, PID: n.PID, Role: n.Role}
	}
	return out
}

// KillPrimary kills (SIGKILL) the node the sentinels name as primary and returns it.
func (s *Sentinel) KillPrimary(ctx context.Context) (RedisNode, error) {
	p, err := s.Primary(ctx)
	if err != nil {
		return RedisNode{}, err
	}
	return p, s.Kill(p.Addr)
}

// WaitPrimaryChange waits until every running sentinel names a primary other than old
// and that primary answers as a master, and returns it. A killed primary is replaced in
// about down-after-milliseconds (1s) plus an election.
func (s *Sentinel) WaitPrimaryChange(ctx context.Context, old string) (RedisNode, error) {
	var p RedisNode
	err := poll(ctx, func() error {
		var err error
		if p, err = s.Primary(ctx); err != nil {
			return err
		}
		if p.Addr == old {
			return fmt.Errorf("the sentinels still name %s", old)
		}
		role, err := cliAuth(ctx, p.Addr, s.opts.Password, "role")
		if err != nil {
			return err
		}
		if !strings.HasPrefix(role, "master") {
			return fmt.Errorf("%s is not a master yet", p.Addr)
		}
		return s.waitAgreeOnce(ctx, p.Addr)
	})
	return p, err
}

func (s *Sentinel) waitAgreeOnce(ctx context.Context, want string) error {
	for _, n := range s.Sentinels {
		if s.pid(n) == 0 {
			continue
		}
		got, err := cli(ctx, n.Addr, "sentinel", "get-master-addr-by-name", SentinelMaster)
		if err != nil {
			return err
		}
		if addr := strings.Join(strings.Fields(got), ":"); addr != want {
			return fmt.Errorf("sentinel %s names %s, not %s", n.Addr, addr, want)
		}
	}
	return nil
}

// Processes common to both.

// Kill kills (SIGKILL) the node at addr and waits for it to exit.
func (r *rig) Kill(addr string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.nodes {
		if n.Addr == addr {
			if n.cmd == nil {
				return fmt.Errorf("%s is not running", addr)
			}
			n.kill()
			return nil
		}
	}
	return fmt.Errorf("%s is not a node of the rig", addr)
}

// Restart starts the killed node at addr again, on the same port and with the same
// settings (a cluster node rejoins from its nodes.conf, as a replica if its slots were
// taken over; a Sentinel node comes back as the old primary until the sentinels
// reconfigure it as a replica), and waits until it answers.
func (r *rig) Restart(ctx context.Context, addr string) error {
	r.mu.Lock()
	var node *RedisNode
	for _, n := range r.nodes {
		if n.Addr == addr {
			node = n
		}
	}
	if node == nil || node.cmd != nil {
		r.mu.Unlock()
		return fmt.Errorf("%s is not a killed node of the rig", addr)
	}
	err := node.startProcess()
	r.mu.Unlock()
	if err != nil {
		return err
	}
	return waitUp(ctx, node)
}

// Stop kills every process of the rig. It may be called more than once.
func (r *rig) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.nodes {
		n.kill()
	}
}

// Logs returns the last lines of every node's log, for a failing test to print.
func (r *rig) Logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, n := range r.nodes {
		data, _ := os.ReadFile(n.log)
		fmt.Fprintf(&b, "== %s (%s)\n%s\n", n.Addr, n.Role, lastLines(data))
	}
	return b.String()
}

func (r *rig) pid(n *RedisNode) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return n.PID
}

func (r *rig) running() []*RedisNode {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*RedisNode
	for _, n := range r.nodes {
		if n.cmd != nil {
			out = append(out, n)
		}
	}
	return out
}

func (r *rig) refreshRoles(ctx context.Context) {
	for _, n := range r.running() {
		if n.Role == "sentinel" {
			continue
		}
		role, err := cliAuth(ctx, n.Addr, n.pass, "role")
		if err != nil {
			continue
		}
		r.mu.Lock()
		if strings.HasPrefix(role, "master") {
			n.Role = "master"
		} else if strings.HasPrefix(role, "slave") {
			n.Role = "replica"
		}
		r.mu.Unlock()
	}
}

// serverArgs are a data node's settings: loopback only, no persistence, and a
// replica's first sync without the 5s diskless delay.
func serverArgs(port int, dir string) []string {
	return []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--daemonize", "no", "--loglevel", "notice", "--logfile", filepath.Join(dir, "redis.log"),
		"--repl-diskless-sync-delay", "0",
	}
}

func (n *RedisNode) startProcess() error {
	cmd := exec.Command("redis-server", n.args...)
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	n.cmd, n.PID, n.done = cmd, cmd.Process.Pid, done
	return nil
}

// kill kills the node's process, if running, and waits for it to exit.
func (n *RedisNode) kill() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Kill()
	<-n.done
	n.cmd, n.PID = nil, 0
}

// waitUp waits until the node answers PING, or fails when it exits (its port taken).
func waitUp(ctx context.Context, n *RedisNode) error {
	return poll(ctx, func() error {
		select {
		case <-n.done:
			data, _ := os.ReadFile(n.log)
			return permanent{fmt.Errorf("redis-server on %s exited: %s", n.Addr, lastLines(data))}
		default:
		}
		out, err := cliAuth(ctx, n.Addr, n.pass, "ping")
		if err != nil || !strings.HasPrefix(out, "PONG") {
			return fmt.Errorf("%s does not answer yet", n.Addr)
		}
		return nil
	})
}

// replicaInSync returns nil for a master, and for a replica whose link is up and synced.
func replicaInSync(ctx context.Context, n *RedisNode) error {
	info, err := cliAuth(ctx, n.Addr, n.pass, "info", "replication")
	if err != nil {
		return err
	}
	if strings.Contains(info, "role:slave") &&
		(!strings.Contains(info, "master_link_status:up") || !strings.Contains(info, "master_sync_in_progress:0")) {
		return fmt.Errorf("replica %s not in sync yet", n.Addr)
	}
	return nil
}

// cli runs one redis-cli command against addr and returns its output.
func cli(ctx context.Context, addr string, args ...string) (string, error) {
	return cliAuth(ctx, addr, "", args...)
}

// cliAuth is cli on a node whose requirepass is pass ("" for none).
func cliAuth(ctx context.Context, addr, pass string, args ...string) (string, error) {
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "redis-cli", append([]string{"-h", host, "-p", port}, args...)...)
	if pass != "" {
		// Not -a: the environment keeps the password off the command line, and
		// redis-cli's warning about that out of the output.
		cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+pass)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("redis-cli -p %s %s: %v: %s", port, strings.Join(args, " "), err, lastLines(out))
	}
	s := string(out)
	if strings.HasPrefix(s, "ERR") || strings.HasPrefix(s, "Could not connect") {
		return "", fmt.Errorf("redis-cli -p %s %s: %s", port, strings.Join(args, " "), strings.TrimSpace(s))
	}
	return s, nil
}

// field returns the integer after the line name in redis-cli's one-value-a-line
// printing of a field/value reply, or -1.
func field(out, name string) int {
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i++ {
		if strings.TrimSpace(lines[i]) == name {
			v, err := strconv.Atoi(strings.TrimSpace(lines[i+1]))
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// permanent is an error poll does not retry.
type permanent struct{ error }

// poll calls f every 50ms until it returns nil, a permanent error, or ctx ends.
func poll(ctx context.Context, f func() error) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// freePorts returns n distinct loopback ports that are free now, and whose port+bus
// is free too when bus is not 0 (the cluster bus).
func freePorts(n, bus int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100 {
			return nil, errors.New("no free loopback ports")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		p := l.Addr().(*net.TCPAddr).Port
		if portsTaken[p] || portsTaken[p+bus] {
			continue
		}
		if bus != 0 {
			if p+bus > 65535 {
				continue
			}
			b, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+bus)))
			if err != nil {
				continue
			}
			held = append(held, b)
		}
		ports = append(ports, p)
	}
	for _, p := range ports {
		portsTaken[p] = true
		if bus != 0 {
			portsTaken[p+bus] = true
		}
	}
	return ports, nil
}

// portsTaken are the ports this process's rigs were given (bus ports included): a
// cluster node binds its bus port only once it runs, so a rig started beside it must
// not be given that port meanwhile.
var (
	portsMu    sync.Mutex
	portsTaken = map[int]bool{}
)

func lastLines(b []byte) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// KeySlot is the cluster slot of key (CRC16 of its hash tag, or of the key, mod 16384),
// as CLUSTER KEYSLOT computes it: the failover tests kill the master of an inbox's slot.
func KeySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
