package statebackend

// WrapStore wraps a backend (a *Keyed[K]) in the public API's opaque
// state.Store. Package state sets it when it is initialised, so the public
// API can hand a backend to users' code without an internal type appearing
// in any exported signature; the operators in package strom call it.
var WrapStore func(backend any) any

// StoreOf returns the state.Store (erased) of backend.
func StoreOf[K comparable](b *Keyed[K]) any {
	if WrapStore == nil {
		panic("statebackend: package state is not initialised")
	}
	return WrapStore(b)
}
