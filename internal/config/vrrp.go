package config

// VRRP is the `vrrp` section of an LB file: how this load balancer elects,
// with its peers, which one holds the virtual addresses.
type VRRP struct {
	Interface       string   `yaml:"interface"`
	VirtualRouterID int      `yaml:"virtual_router_id"`
	Priority        int      `yaml:"priority"`
	AdvertInterval  Duration `yaml:"advert_interval"`
	VirtualIPs      []string `yaml:"virtual_ips"`
}

func (v *VRRP) setDefaults() {}

func (v *VRRP) validate(p string) []*fieldError { return nil }
