// Package activation holds OpenWhisk's wire and record types and the pure rules on them.
//
// Types, field for field as the upstream (Scala, spray-json) invoker reads and writes them:
// ActivationMessage (controller → invoker<N>), the acknowledgements (Ack: CompletionMessage,
// ResultMessage, CombinedCompletionAndResultMessage and their shrunk forms), PingMessage,
// EventMessage, InvokerInstanceID with ByteSize, WhiskActivation in its ack, stored and REST
// forms, the action document (ActionDocument, Exec, Parameters, ActionLimits) and the runtimes
// manifest (Manifest).
//
// Decoding contract, common to every Decode function: required members must be present,
// unknown members are ignored, an input that is not what the protocol allows is refused with
// a *FieldError that names the field (a dotted path) and wraps the document's sentinel
// (ErrInvalidMessage, ErrInvalidRecord, ErrInvalidAction, ErrInvalidManifest). Decoders never
// panic and allocate in proportion to their input; Kafka records above MaxActivationLimit are
// refused before they are parsed. Encoding omits empty optional members and writes a
// transaction id exactly as it was received; encode with Marshal (not json.Marshal, which
// escapes <, > and &) so that strings also go out byte for byte.
//
// Rules (no I/O, no clock: times are passed in): ClassifyInit and ClassifyRun turn a
// RuntimeOutcome into an ActivationResponse with OpenWhisk's texts; ChooseAcks says which acks
// to send in which order; BuildInitBody and BuildRunBody make the runtime's /init and /run
// bodies including the __OW_* context and decrypted parameters; ActivationEventFrom derives the
// user event; CheckLimits checks action limits; ShouldStore applies the store levels;
// BuildActivation and FallbackActivation make the activation record; LogCollector, FormatLogLine
// and InvokerLogLine make its log lines.
package activation
