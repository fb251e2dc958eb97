package dbha

import (
	"strings"
	"testing"
)

func replicaStatus(name, ioPos, slavePos, sql string, errant ...string) *NodeStatus {
	return &NodeStatus{Name: name, Reachable: true, GTIDSlavePos: slavePos, Errant: errant,
		Replica: &ReplicaStatus{IORunning: "Connecting", SQLRunning: sql, GTIDIOPos: ioPos}}
}

func TestChoose(t *testing.T) {
	m, err := NewManager(Config{Nodes: []NodeConfig{{Name: "db1", Addr: "127.0.0.1:1"}, {Name: "db2", Addr: "127.0.0.1:2"},
		{Name: "db3", Addr: "127.0.0.1:3"}, {Name: "db4", Addr: "127.0.0.1:4"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tests := []struct {
		name     string
		replicas []*NodeStatus
		want     []string          // candidates, best first
		refused  map[string]string // node → part of the reason
	}{
		{
			name: "most received wins, not most applied",
			replicas: []*NodeStatus{
				replicaStatus("db2", "0-1-100", "0-1-100", "Yes"),
				replicaStatus("db3", "0-1-120", "0-1-90", "Yes"),
			},
			want: []string{"db3", "db2"},
		},
		{
			name: "equal positions: configuration order",
			replicas: []*NodeStatus{
				replicaStatus("db3", "0-1-100", "0-1-100", "Yes"),
				replicaStatus("db2", "0-1-100", "0-1-100", "Yes"),
			},
			want: []string{"db2", "db3"},
		},
		{
			name: "applied beyond an empty IO position (after a restart)",
			replicas: []*NodeStatus{
				replicaStatus("db2", "", "0-1-100", "Yes"),
				replicaStatus("db3", "0-1-99", "0-1-99", "Yes"),
			},
			want: []string{"db2", "db3"},
		},
		{
			name: "errant and stopped replicas are refused with the reason",
			replicas: []*NodeStatus{
				replicaStatus("db2", "0-1-200", "0-1-200", "Yes", "9-2-1"),
				replicaStatus("db3", "0-1-150", "0-1-150", "No"),
				replicaStatus("db4", "0-1-100", "0-1-100", "Yes"),
			},
			want:    []string{"db4"},
			refused: map[string]string{"db2": "errant GTID 9-2-1", "db3": "SQL thread stopped"},
		},
		{
			name:     "unparsable position",
			replicas: []*NodeStatus{replicaStatus("db2", "0-x-1", "", "Yes")},
			refused:  map[string]string{"db2": "bad GTID"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, refused := m.choose(tt.replicas)
			var got []string
			for _, c := range cs {
				got = append(got, c.s.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("choose() = %v, want %v", got, tt.want)
			}
			if len(refused) != len(tt.refused) {
				t.Errorf("refused = %v, want %v", refused, tt.refused)
			}
			for n, want := range tt.refused {
				if !strings.Contains(refused[n], want) {
					t.Errorf("refused[%s] = %q, want it to contain %q", n, refused[n], want)
				}
			}
		})
	}
}
