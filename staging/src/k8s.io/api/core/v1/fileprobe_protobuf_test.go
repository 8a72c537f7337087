/*
Copyright The kubelet-fileprobe Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1

import (
	"bytes"
	"reflect"
	"testing"
)

// TestProbeHandlerFileProtobufFieldNumber pins the protobuf field number of
// ProbeHandler.File. It is part of the storage format of every object with a
// pod template in etcd: it must stay out of the numbers upstream appends
// (ProbeHandler has 4 fields today, no k8s.io/api message more than 44), and it
// must never change once objects with file probes are stored.
func TestProbeHandlerFileProtobufFieldNumber(t *testing.T) {
	const wantTag = "bytes,1000,opt,name=file"
	f, ok := reflect.TypeOf(ProbeHandler{}).FieldByName("File")
	if !ok {
		t.Fatal("ProbeHandler has no field File")
	}
	if got := f.Tag.Get("protobuf"); got != wantTag {
		t.Fatalf("ProbeHandler.File protobuf tag = %q, want %q", got, wantTag)
	}

	// What the generated code writes: field 1000, wire type 2 (length-delimited),
	// key 1000<<3|2 = 8002, the varint 0xc2 0x3e; then FileAction's own fields.
	in := ProbeHandler{File: &FileAction{Path: "/v/f", Validity: 7}}
	data, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0xc2, 0x3e, 8, // ProbeHandler.File, 8 bytes
		0x0a, 4, '/', 'v', '/', 'f', // FileAction.Path (1)
		0x10, 7, // FileAction.Validity (2)
	}
	if !bytes.Equal(data, want) {
		t.Fatalf("ProbeHandler{File} marshals to % x, want % x", data, want)
	}
	var out ProbeHandler
	if err := out.Unmarshal(data); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
}
