package bench

import "math/rand/v2"

// picker chooses a payer and a payee among the customers.
type picker struct {
	bankOf []int   // customer -> bank index
	byBank [][]int // bank index -> customers
}

func newPicker(custs []customer) *picker {
	banks := map[string]int{}
	p := &picker{bankOf: make([]int, len(custs))}
	for i, c := range custs {
		b, ok := banks[c.account.Bank]
		if !ok {
			b = len(p.byBank)
			banks[c.account.Bank] = b
			p.byBank = append(p.byBank, nil)
		}
		p.bankOf[i] = b
		p.byBank[b] = append(p.byBank[b], i)
	}
	return p
}

// pick returns a random payer and a different random payee at the payer's
// bank when sameBank, else at another bank. When the wanted kind does not
// exist (a payer alone at its bank, or a single bank), it falls back to the
// other kind.
func (p *picker) pick(rng *rand.Rand, sameBank bool) (payer, payee int) {
	payer = rng.IntN(len(p.bankOf))
	home := p.byBank[p.bankOf[payer]]
	if sameBank && len(home) < 2 || !sameBank && len(p.byBank) < 2 {
		sameBank = !sameBank
	}
	if sameBank {
		for {
			if payee = home[rng.IntN(len(home))]; payee != payer {
				return payer, payee
			}
		}
	}
	// A payee uniformly among the customers of the other banks.
	others := len(p.bankOf) - len(home)
	k := rng.IntN(others)
	for b, members := range p.byBank {
		if b == p.bankOf[payer] {
			continue
		}
		if k < len(members) {
			return payer, members[k]
		}
		k -= len(members)
	}
	panic("unreachable: the other banks hold fewer customers than counted")
}
