package task

// DecodeTimerNamespace exposes decodeNamespace to the external tests, which
// read timers back from a restored backend: kind 0 is a user timer, 1 a
// window's end and 2 its expiry, with the window [start, end).
func DecodeTimerNamespace(b []byte) (kind uint8, start, end int64, err error) {
	ns, win, err := decodeNamespace(b)
	return ns, win.start, win.end, err
}
