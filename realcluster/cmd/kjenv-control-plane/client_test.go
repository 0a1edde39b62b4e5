package main

import "testing"

func TestNodeReady(t *testing.T) {
	for body, want := range map[string]bool{
		`{"status":{"conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"True"}]}}`: true,
		`{"status":{"conditions":[{"type":"Ready","status":"False"}]}}`:                                           false,
		`{"status":{"conditions":[{"type":"Ready","status":"Unknown"}]}}`:                                         false,
		`{"status":{}}`: false,
	} {
		got, err := nodeReady([]byte(body))
		if err != nil || got != want {
			t.Errorf("nodeReady(%s) = %v, %v; want %v", body, got, err, want)
		}
	}
	if _, err := nodeReady([]byte("not json")); err == nil {
		t.Error("no error for a body that is not JSON")
	}
}
