package sshx

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

func TestDestination(t *testing.T) {
	for in, want := range map[string]string{
		"login":             "login",
		"me@login":          "me@login",
		"login:2222":        "ssh://login:2222",
		"me@login:2222":     "ssh://me@login:2222",
		"ssh://me@login:22": "ssh://me@login:22",
	} {
		got, err := destination(in)
		if err != nil || got != want {
			t.Errorf("destination(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-oProxyCommand=touch /tmp/x", "a b", "login:x", "h\n"} {
		if _, err := destination(bad); err == nil {
			t.Errorf("destination(%q) accepted", bad)
		}
	}
}

func TestClassify(t *testing.T) {
	exit := func(code int) error { return exec.Command("sh", "-c", fmt.Sprintf("exit %d", code)).Run() }
	cases := []struct {
		code   int
		stderr string
		kind   Kind
		says   string
	}{
		{255, "ssh: Could not resolve hostname nosuch: Name or service not known", UnknownHost, "unknown host"},
		{255, "ssh: connect to host 127.0.0.1 port 1: Connection refused", Unreachable, "cannot connect"},
		{255, "root@127.0.0.1: Permission denied (publickey).", AuthFailed, "refused the login"},
		{255, "Host key verification failed.", HostKey, "host key"},
		{127, "bash: line 1: ipcluster: command not found", CommandNotFound, "command not found on h: ipcluster"},
		{3, "boom", CommandFailed, "exit 3"},
	}
	for _, c := range cases {
		err := classify("h", "ipcluster list", exit(c.code), []byte(c.stderr))
		var e *Error
		if !errors.As(err, &e) || e.Kind != c.kind || !strings.Contains(err.Error(), c.says) {
			t.Errorf("code %d %q: got %v (kind %v), want kind %v saying %q", c.code, c.stderr, err, e, c.kind, c.says)
		}
		if !errors.Is(err, &Error{Kind: c.kind}) {
			t.Errorf("errors.Is by kind failed for %v", err)
		}
	}
}

func TestRemotePath(t *testing.T) {
	for in, want := range map[string]string{
		"~/.ipython/x y": `"$HOME"/'.ipython/x y'`,
		"/tmp/a":         "/tmp/a",
		"~":              `"$HOME"`,
	} {
		if got := RemotePath(in); got != want {
			t.Errorf("RemotePath(%q) = %s, want %s", in, got, want)
		}
	}
}
