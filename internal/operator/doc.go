// Package operator holds the engines behind the API's keyed operators:
// Flink's WindowOperator (window contents, merging window sets, the
// triggers' runtime, evictors), the window join and interval join buffers,
// and the core of keyed process functions (timers and their dispatch).
//
// It never imports the API package: where the engine calls user code it
// takes Go funcs, and where it hands user code a context (WindowContext,
// KeyedContext) it holds it as a type parameter or through funcs the API
// supplies, so the API's types stay its own and the hot path makes the
// same calls it made when both lived in one package. Operators here are
// configured through exported fields before Open and run on their task's
// goroutine.
package operator
