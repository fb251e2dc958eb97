package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Installer puts rulesets into the kernel over netlink.
type Installer struct {
	// NetNS is an open file descriptor of the network namespace to
	// change (0: the caller's own).
	NetNS int
}

func (in Installer) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if in.NetNS != 0 {
		opts = append(opts, nftables.WithNetNSFd(in.NetNS))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("firewall: netlink: %w", err)
	}
	return c, nil
}

var table = &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}

// Apply replaces fulcrum's table with rs in one netlink batch, which the
// kernel applies atomically: either the whole new table is in place or the
// old one is untouched. Other tables are left alone.
func (in Installer) Apply(rs *Ruleset) error {
	if err := rs.Check(); err != nil {
		return err
	}
	c, err := in.conn()
	if err != nil {
		return err
	}
	// Adding before deleting makes the delete valid whether or not the
	// table exists, the idiom `nft -f` files use.
	c.AddTable(table)
	c.DelTable(table)
	c.AddTable(table)
	for _, ch := range rs.Chains {
		hook, err := hookOf(ch.Name)
		if err != nil {
			return err
		}
		policy := nftables.ChainPolicyAccept
		if ch.Policy == Drop {
			policy = nftables.ChainPolicyDrop
		}
		nc := c.AddChain(&nftables.Chain{
			Name: ch.Name, Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &policy,
		})
		for i := range ch.Rules {
			r := &ch.Rules[i]
			nr := &nftables.Rule{Table: table, Chain: nc, Exprs: r.Exprs()}
			if r.Comment != "" {
				// libnftnl's NFTNL_UDATA_RULE_COMMENT: NUL-terminated.
				nr.UserData = userdata.Append(nil, userdata.TypeComment, append([]byte(r.Comment), 0))
			}
			c.AddRule(nr)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: apply table inet %s: %w", TableName, err)
	}
	return nil
}

// Remove deletes fulcrum's table, if there is one, and nothing else.
func (in Installer) Remove() error {
	c, err := in.conn()
	if err != nil {
		return err
	}
	c.AddTable(table)
	c.DelTable(table)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: remove table inet %s: %w", TableName, err)
	}
	return nil
}

// Installed reports whether fulcrum's table exists.
func (in Installer) Installed() (bool, error) {
	c, err := in.conn()
	if err != nil {
		return false, err
	}
	if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("firewall: list table inet %s: %w", TableName, err)
	}
	return true, nil
}

func hookOf(chain string) (*nftables.ChainHook, error) {
	switch chain {
	case "input":
		return nftables.ChainHookInput, nil
	case "forward":
		return nftables.ChainHookForward, nil
	case "output":
		return nftables.ChainHookOutput, nil
	}
	return nil, fmt.Errorf("firewall: chain %q: not input, forward or output", chain)
}

// Exprs returns r as the netlink expressions nft itself generates for
// r.String(), so that `nft list` prints the rule back as planned.
func (r *Rule) Exprs() []expr.Any {
	var e []expr.Any
	cmp := func(op expr.CmpOp, data []byte) {
		e = append(e, &expr.Cmp{Op: op, Register: 1, Data: data})
	}
	if r.IIFName != "" {
		e = append(e, &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1})
		name := make([]byte, unix.IFNAMSIZ)
		copy(name, r.IIFName)
		cmp(expr.CmpOpEq, name)
	}
	if r.CtState != 0 {
		e = append(e, &expr.Ct{Key: expr.CtKeySTATE, Register: 1})
		mask := binary.NativeEndian.AppendUint32(nil, uint32(r.CtState))
		e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)})
		cmp(expr.CmpOpNeq, make([]byte, 4))
	}
	if r.Family != AnyFamily {
		e = append(e, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1})
		cmp(expr.CmpOpEq, []byte{byte(r.Family)})
	}
	addr := func(p netip.Prefix, v4off, v6off uint32) {
		off := v4off
		if p.Addr().Is6() {
			off = v6off
		}
		p = p.Masked()
		n := uint32(p.Addr().BitLen() / 8)
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n})
		if !p.IsSingleIP() {
			mask := make([]byte, n)
			for i := range p.Bits() {
				mask[i/8] |= 0x80 >> (i % 8)
			}
			e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)})
		}
		cmp(expr.CmpOpEq, p.Addr().AsSlice())
	}
	if r.Saddr.IsValid() {
		addr(r.Saddr, 12, 8) // RFC 791 section 3.1; RFC 8200 section 3
	}
	if r.Daddr.IsValid() {
		addr(r.Daddr, 16, 24)
	}
	if r.Proto != AnyProto {
		e = append(e, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1})
		cmp(expr.CmpOpEq, []byte{byte(r.Proto)})
	}
	if r.DPort != 0 {
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
		cmp(expr.CmpOpEq, binary.BigEndian.AppendUint16(nil, r.DPort))
	}
	if r.HasICMPType {
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1})
		cmp(expr.CmpOpEq, []byte{r.ICMPType})
	}
	if r.Limit != nil {
		e = append(e, &expr.Limit{Type: expr.LimitTypePkts, Rate: r.Limit.Rate, Unit: expr.LimitTimeSecond, Burst: r.Limit.Burst})
	}
	v := expr.VerdictAccept
	if r.Verdict == Drop {
		v = expr.VerdictDrop
	}
	return append(e, &expr.Verdict{Kind: v})
}
