package health

import "testing"

// The hot path: the proxy reads Up() and reports each response.
func BenchmarkUp(b *testing.B) {
	m := NewMonitor(Config{}, nil, nil, nil)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !m.Up() {
				b.Fatal("down")
			}
		}
	})
}

func BenchmarkObserveSuccess(b *testing.B) {
	m := NewMonitor(Config{}, nil, nil, nil)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Observe(nil)
		}
	})
}

func BenchmarkObserveError(b *testing.B) {
	m := NewMonitor(Config{Fall: 1 << 30}, nil, nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		m.Observe(errBoom)
	}
}
