package main

import (
	"reflect"
	"testing"

	"github.com/gpufabric/gpufabric/interpose"
)

func TestParseShare(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want interpose.Share
		err  bool
	}{
		{"", interpose.Share{Fraction: 1}, false},
		{"0.25", interpose.Share{Fraction: 0.25}, false},
		{"1", interpose.Share{Fraction: 1}, false},
		{" 0.5 ", interpose.Share{Fraction: 0.5}, false},
		{"25%", interpose.Share{Fraction: 0.25}, false},
		{"100%", interpose.Share{Fraction: 1}, false},
		{"512MiB", interpose.Share{Bytes: 512 << 20}, false},
		{"2GiB", interpose.Share{Bytes: 2 << 30}, false},
		{"1GB", interpose.Share{Bytes: 1e9}, false},
		{"0", interpose.Share{}, true},
		{"1.5", interpose.Share{}, true},
		{"-0.1", interpose.Share{}, true},
		{"NaN", interpose.Share{}, true},
		{"0%", interpose.Share{}, true},
		{"150%", interpose.Share{}, true},
		{"lots", interpose.Share{}, true},
		{"0B", interpose.Share{}, true},
	} {
		got, err := parseShare(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseShare(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := parseConfig(env(map[string]string{
		"GPUFABRIC_SERVER": "10.0.0.1:7070", "GPUFABRIC_DEVICES": "2", "GPUFABRIC_SHARE": "256MiB",
		"GPUFABRIC_TOKEN": "s3cret", "GPUFABRIC_TRANSPORT": "tcp", "GPUFABRIC_BULK_TRANSPORT": "shm",
		"GPUFABRIC_TLS_CA": "/ca.pem", "GPUFABRIC_TLS_CERT": "/c.pem", "GPUFABRIC_TLS_KEY": "/k.pem", "GPUFABRIC_TLS_SERVER_NAME": "gpu-1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := config{targets: []target{{server: "10.0.0.1:7070", devices: 2, token: "s3cret"}}, share: interpose.Share{Bytes: 256 << 20}, transport: "tcp", bulk: "shm",
		tls: interpose.TLSFiles{CA: "/ca.pem", Cert: "/c.pem", Key: "/k.pem", ServerName: "gpu-1"}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v, want %+v", c, want)
	}
	c, err = parseConfig(env(map[string]string{"GPUFABRIC_SERVER": "h:1", "GPUFABRIC_DEVICES": "all"}))
	if err != nil || c.targets[0].devices != 0 || c.share.Fraction != 1 {
		t.Errorf("all devices, default share: got %+v, %v", c, err)
	}
	// Several servers: a count and a token each, or one for all; a single
	// server's token is taken whole, commas and all.
	for _, tc := range []struct {
		env  map[string]string
		want []target
	}{
		{map[string]string{"GPUFABRIC_SERVER": "a:1,b:2", "GPUFABRIC_DEVICES": "1,2", "GPUFABRIC_TOKEN": "ta,tb"},
			[]target{{server: "a:1", devices: 1, token: "ta"}, {server: "b:2", devices: 2, token: "tb"}}},
		{map[string]string{"GPUFABRIC_SERVER": "a:1, b:2", "GPUFABRIC_TOKEN": "shared"},
			[]target{{server: "a:1", devices: 1, token: "shared"}, {server: "b:2", devices: 1, token: "shared"}}},
		{map[string]string{"GPUFABRIC_SERVER": "a:1", "GPUFABRIC_TOKEN": "x,y"},
			[]target{{server: "a:1", devices: 1, token: "x,y"}}},
	} {
		c, err := parseConfig(env(tc.env))
		if err != nil || !reflect.DeepEqual(c.targets, tc.want) {
			t.Errorf("parseConfig(%v) = %+v, %v; want targets %+v", tc.env, c.targets, err, tc.want)
		}
	}
	for _, bad := range []map[string]string{
		{},
		{"GPUFABRIC_SERVER": "h:1", "GPUFABRIC_DEVICES": "0"},
		{"GPUFABRIC_SERVER": "a:1,b:2", "GPUFABRIC_DEVICES": "1,1,1"},
		{"GPUFABRIC_SERVER": "a:1,,b:2"},
		{"GPUFABRIC_SERVER": "a:1,b:2", "GPUFABRIC_DEVICES": "1,0"},
		{"GPUFABRIC_SERVER": "h:1", "GPUFABRIC_DEVICES": "x"},
		{"GPUFABRIC_SERVER": "h:1", "GPUFABRIC_SHARE": "2"},
		{"GPUFABRIC_SERVER": "h:1", "GPUFABRIC_TRANSPORT": "rdma"},
		{"GPUFABRIC_SERVER": "h:1", "GPUFABRIC_BULK_TRANSPORT": "pigeon"},
	} {
		if _, err := parseConfig(env(bad)); err == nil {
			t.Errorf("parseConfig(%v) succeeded", bad)
		}
	}
}
