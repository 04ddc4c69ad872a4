package snapshot

// StateStats sums up one state of a snapshot.
type StateStats struct {
	State
	Slots   int   // keys (keyed state) or 1 (operator state with entries)
	Entries int   // values, list items and map entries
	Bytes   int64 // of keys, user keys and values
}

// Stats sums up a snapshot, as `weir savepoint inspect` shows it.
type Stats struct {
	States    []StateStats // as in the header
	Timers    int
	KeyGroups int // key groups that hold a slot or a timer
}

// Stats reads the whole snapshot and sums it up.
func (r *Reader) Stats() (Stats, error) {
	st := Stats{States: make([]StateStats, len(r.h.States))}
	for i, s := range r.h.States {
		st.States[i].State = s
	}
	lastKG := -1
	err := r.Each(func(rec *Record) error {
		if rec.Type != OperatorList && rec.Type != Broadcast && rec.KeyGroup != lastKG {
			st.KeyGroups++
			lastKG = rec.KeyGroup
		}
		if rec.Type == Timer {
			st.Timers++
			return nil
		}
		s := &st.States[rec.State]
		n, b := 0, int64(len(rec.Key))
		switch rec.Type {
		case Value:
			n, b = 1, b+int64(len(rec.Value))
		case List, OperatorList:
			for _, it := range rec.Items {
				n, b = n+1, b+int64(len(it.Value))
			}
		default:
			for _, e := range rec.Entries {
				n, b = n+1, b+int64(len(e.Key)+len(e.Value))
			}
		}
		if n > 0 {
			s.Slots++
		}
		s.Entries += n
		s.Bytes += b
		return nil
	})
	return st, err
}
