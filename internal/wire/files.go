package wire

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// Common holds the connection-file fields shared by the client and engine
// files, with ipyparallel's names.
type Common struct {
	SSH             string  `json:"ssh"`
	Interface       string  `json:"interface"`
	Registration    int     `json:"registration"`
	Control         int     `json:"control"`
	Mux             int     `json:"mux"`
	Task            int     `json:"task"`
	IOPub           int     `json:"iopub"`
	Key             string  `json:"key"`
	CurveServerKey  *string `json:"curve_serverkey"`
	Location        string  `json:"location"`
	Pack            string  `json:"pack"`
	Unpack          string  `json:"unpack"`
	SignatureScheme string  `json:"signature_scheme"`
}

// ClientInfo is ipcontroller-client.json.
type ClientInfo struct {
	Common
	Notification int    `json:"notification"`
	Broadcast    int    `json:"broadcast"`
	TaskScheme   string `json:"task_scheme"`
	// The controller's own process (procid.ID), written by our controller
	// so that a client on its host can tell a controller too busy to
	// answer from a dead one. ipyparallel neither writes nor reads them.
	ControllerPID   int    `json:"controller_pid,omitempty"`
	ControllerStart uint64 `json:"controller_start,omitempty"`
	ControllerHost  string `json:"controller_host,omitempty"`
}

// EngineInfo is ipcontroller-engine.json.
type EngineInfo struct {
	Common
	HBPing    int   `json:"hb_ping"`
	HBPong    int   `json:"hb_pong"`
	Broadcast []int `json:"broadcast"`
}

// URL joins the interface with a port the way ipyparallel does: ":" for
// tcp, "-" for ipc. A wildcard interface is replaced by loopback when the
// file's location is this host, else by the location's address.
func (c *Common) URL(port int) string {
	iface := c.Interface
	if i := strings.Index(iface, "://"); i >= 0 && strings.HasPrefix(iface, "tcp") {
		host := iface[i+3:]
		if host == "*" || host == "0.0.0.0" {
			iface = iface[:i+3] + disambiguate(c.Location)
		}
	}
	if strings.HasPrefix(iface, "ipc") {
		return iface + "-" + strconv.Itoa(port)
	}
	return iface + ":" + strconv.Itoa(port)
}

func disambiguate(location string) string {
	if location == "" {
		return "127.0.0.1"
	}
	if h, _ := os.Hostname(); h == location {
		return "127.0.0.1"
	}
	if ip := net.ParseIP(location); ip != nil {
		return location
	}
	if addrs, err := net.LookupHost(location); err == nil && len(addrs) > 0 {
		return addrs[0]
	}
	return location
}

// check refuses files a Go peer cannot use.
func (c *Common) check() error {
	if c.Registration == 0 {
		return errors.New("no registration port")
	}
	if c.Interface == "" {
		return errors.New("no interface")
	}
	if c.SignatureScheme != "" && c.SignatureScheme != "hmac-sha256" {
		return fmt.Errorf("signature scheme %q is not supported (only hmac-sha256)", c.SignatureScheme)
	}
	for _, p := range []string{c.Pack, c.Unpack} {
		if p != "" && p != "json" {
			return fmt.Errorf("packer %q is not supported (only json)", p)
		}
	}
	if k := c.CurveServerKey; k != nil && *k != "" && len(*k) != 40 {
		return fmt.Errorf("curve_serverkey must be a 40-character Z85 key, not %d characters", len(*k))
	}
	return nil
}

// ServerKey is the controller's CURVE public key peers must use: the
// file's curve_serverkey, else $IPP_CURVE_SERVERKEY (ipyparallel's order),
// else "" for a controller without CURVE.
func (c *Common) ServerKey() string {
	if c.CurveServerKey != nil && *c.CurveServerKey != "" {
		return *c.CurveServerKey
	}
	return os.Getenv(protocol.EnvCurveServerKey)
}

// CurveKeysFromEnv returns this process's own CURVE key pair from
// $IPP_CURVE_PUBLICKEY and $IPP_CURVE_SECRETKEY; empty when not set.
func CurveKeysFromEnv() (public, secret string) {
	return os.Getenv(protocol.EnvCurvePublicKey), os.Getenv(protocol.EnvCurveSecretKey)
}

// Defaults fills the fields ipyparallel always writes.
func (c *Common) Defaults() {
	if c.SignatureScheme == "" {
		c.SignatureScheme = "hmac-sha256"
	}
	if c.Pack == "" {
		c.Pack = "json"
	}
	if c.Unpack == "" {
		c.Unpack = "json"
	}
}

// LoadClientInfo reads a client connection file.
func LoadClientInfo(path string) (*ClientInfo, error) {
	var ci ClientInfo
	if err := readJSON(path, &ci); err != nil {
		return nil, err
	}
	if err := ci.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &ci, nil
}

// LoadEngineInfo reads an engine connection file.
func LoadEngineInfo(path string) (*EngineInfo, error) {
	var ei EngineInfo
	if err := readJSON(path, &ei); err != nil {
		return nil, err
	}
	return &ei, ei.validate(path)
}

// ParseEngineInfo reads the engine file's JSON from a string, as found in
// the IPP_CONNECTION_INFO environment variable.
func ParseEngineInfo(data []byte) (*EngineInfo, error) {
	var ei EngineInfo
	if err := json.Unmarshal(data, &ei); err != nil {
		return nil, fmt.Errorf("engine connection info: %w", err)
	}
	return &ei, ei.validate(protocol.EnvConnectionInfo)
}

func (ei *EngineInfo) validate(where string) error {
	if err := ei.check(); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if ei.HBPing == 0 || ei.HBPong == 0 || len(ei.Broadcast) == 0 {
		return fmt.Errorf("%s: not an engine connection file (needs hb_ping, hb_pong and broadcast)", where)
	}
	return nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// WritePrivateJSON writes v as indented JSON readable only by the owner
// (0600), creating the directory 0700. The file is written under a
// temporary name and renamed, so readers never see half a file.
func WritePrivateJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WritePrivateFile(path, append(data, '\n'))
}

// WritePrivateFile writes data atomically with mode 0600.
func WritePrivateFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// IPythonDir is $IPYTHONDIR, else ~/.ipython.
func IPythonDir() string {
	if d := os.Getenv("IPYTHONDIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".ipython")
}

// ProfileDir is the directory of a named profile ("" means "default").
func ProfileDir(profile string) string {
	if profile == "" {
		profile = "default"
	}
	return filepath.Join(IPythonDir(), "profile_"+profile)
}

// SecurityDir holds connection and cluster files.
func SecurityDir(profileDir string) string { return filepath.Join(profileDir, "security") }

// LogDir holds controller and engine logs.
func LogDir(profileDir string) string { return filepath.Join(profileDir, "log") }

func withID(prefix, clusterID, suffix string) string {
	if clusterID == "" {
		return prefix + suffix
	}
	return prefix + "-" + clusterID + suffix
}

// ClientFile is security/ipcontroller[-<id>]-client.json.
func ClientFile(profileDir, clusterID string) string {
	return filepath.Join(SecurityDir(profileDir), withID("ipcontroller", clusterID, "-client.json"))
}

// EngineFile is security/ipcontroller[-<id>]-engine.json.
func EngineFile(profileDir, clusterID string) string {
	return filepath.Join(SecurityDir(profileDir), withID("ipcontroller", clusterID, "-engine.json"))
}

// ClusterFile is security/cluster-<id>.json (literally cluster-.json for
// the default id, as ipcluster writes it).
func ClusterFile(profileDir, clusterID string) string {
	return filepath.Join(SecurityDir(profileDir), "cluster-"+clusterID+".json")
}
