package nlu

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ORTVersion is the ONNX Runtime release that onnxruntime_go v1.27 is built against.
const ORTVersion = "1.24.1"

// ONNX Runtime has one environment per process, so its initialisation is the one piece of
// package state here: the first caller's library path wins, later callers share it.
var (
	ortOnce sync.Once
	ortErr  error
	ortPath string
)

// InitRuntime loads the ONNX Runtime shared library at path (see FindRuntime) once per process.
func InitRuntime(path string) error {
	ortOnce.Do(func() {
		if path == "" {
			ortErr = errors.New("nlu: no ONNX Runtime library found: run scripts/setup or set ONNXRUNTIME_LIB")
			return
		}
		if _, err := os.Stat(path); err != nil {
			ortErr = fmt.Errorf("nlu: ONNX Runtime library: %w", err)
			return
		}
		ortPath = path
		ort.SetSharedLibraryPath(path)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			ortErr = fmt.Errorf("nlu: ONNX Runtime %s: %w", path, err)
		}
	})
	if ortErr == nil && path != "" && path != ortPath {
		return fmt.Errorf("nlu: ONNX Runtime already loaded from %s", ortPath)
	}
	return ortErr
}

// FindRuntime returns the ONNX Runtime library to load: $ONNXRUNTIME_LIB, else the copy that
// scripts/setup puts in var/onnxruntime (looked for from the working folder upwards), else a
// system copy of the 1.24 series; "" when there is none.
func FindRuntime() string {
	if p := os.Getenv("ONNXRUNTIME_LIB"); p != "" {
		return p
	}
	if dir, err := os.Getwd(); err == nil {
		for {
			p := filepath.Join(dir, "var", "onnxruntime", "libonnxruntime.so."+ORTVersion)
			if _, err := os.Stat(p); err == nil {
				return p
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	for _, pattern := range []string{"/usr/lib/libonnxruntime.so.1.24*", "/usr/lib/x86_64-linux-gnu/libonnxruntime.so.1.24*", "/usr/local/lib/libonnxruntime.so.1.24*"} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return m[0]
		}
	}
	return ""
}
