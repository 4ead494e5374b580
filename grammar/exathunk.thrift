// exathunk's wire: the RemoteExecutionService that a worker node (`exathunk serve`) and a
// broker (`exathunk broker`) both speak, so that a client cannot tell them apart.
//
// A client ships a *whole program* (its source text, or its compiled graph) and gets back a
// RemoteThunk, a handle on a computation that runs remotely; it later fetches the value
// (thunkGet, which throws NotDone while the program runs, or thunkWait, which blocks up to
// a timeout).  One-round-trip and batch calls exist for throughput.
//
// Thrift has no recursive types (and the official Python binding supports none), so every
// tree or graph here travels as a flat list of nodes that refer to each other by their
// index in that list: values (ValueNode), types (TypeNode) and programs (GraphFunction).
//
// Every failure is a declared exception that carries the exathunk error class name
// (`kind`), the message and, where known, the line and column of the offending source.
// The server never answers with a bare TApplicationException or drops the connection for
// an error in a request (a malformed *frame* is another matter: that connection is closed).
// Every string is UTF-8: a string argument that is not is an ExathunkException naming the
// field ("field evalRequest.requestId is not valid UTF-8 (byte offset 4)"), and a source
// text that is not is a ParseError naming the byte offset, with its line and column.
//
// Transport: framed (4-byte big-endian length, then the message); protocol: binary, strict;
// over TCP, or over TLS when the node is started with `--tls-cert`.  A node started with
// `--token-file` wants the shared token once per connection (authenticate, the first
// call) and answers AuthenticationError until it has it: see docs/security.md.
// The server rejects frames larger than its configured bound (16 MiB by default), and
// strings, containers and nesting beyond its bounds, before allocating anything for them.
//
// Compiles with the official Apache Thrift compiler (`thrift --gen py exathunk.thrift`) and
// loads in thriftpy2 (exathunk.wire loads it as module `exathunk_thrift`).

namespace py exathunk_wire
namespace java exathunk.wire
namespace cpp exathunk_wire

// ---------------------------------------------------------------------------------------
// Enums

// How a function treats a parameter (as in the first exathunk): a STRICT argument is
// evaluated before the call, a LAZY one is passed unevaluated and forced only if needed.
// A remote typechecker needs it to compile calls to functions it does not implement.
enum Strictness {
  STRICT = 0,
  LAZY = 1,
}

// The kind of one node of a flat value tree (see ValueNode).
enum ValueKind {
  INT = 1,     // a 64-bit signed integer: intValue
  DOUBLE = 2,  // an IEEE double: doubleValue
  BOOL = 3,    // boolValue
  STRING = 4,  // stringValue (UTF-8)
  LIST = 5,    // a list: children holds the indices of its elements, in order
  DATA = 6,    // a value of a data type: constructor names its constructor (e.g. "Just",
               // "Pt", "Nothing") and children holds the indices of its fields, in the
               // constructor's declared order (record fields by position too; empty for a
               // nullary constructor).  Each index is greater than the node's own, as for
               // LIST.  A Pair is DATA "Pair" with two children: the wire has no tuples.
}

// The kind of one node of a flat type tree (see TypeNode).
enum TypeKind {
  CON = 1,       // a base type: name is Int, Double, Bool or String
  VAR = 2,       // a type variable: name is a, b, c...
  LIST = 3,      // (List a): children holds exactly one index, the element type
  FUNCTION = 4,  // (-> a b ... r): children holds the parameter types then the result type
  DATA = 5,      // a data type applied to its arguments: name is the type's name (Maybe,
                 // Pair, Tree, a node's own types) and children holds one index per type
                 // argument, in order ((Maybe Int): one child; Tree: none)
}

// Where a remote computation stands (reported by NotDone and by the stats).
enum ThunkState {
  QUEUED = 1,     // accepted, waiting for a free worker
  RUNNING = 2,    // being evaluated now
  DONE = 3,       // finished with a value
  FAILED = 4,     // finished with an error
  CANCELLED = 5,  // cancelled by the client before it finished
}

// A broker's verdict on one of its workers (see WorkerStats).
enum WorkerState {
  ACTIVE = 1,     // trusted with work; checked now and then
  PROBATION = 2,  // new or recovering: its results are checked more often
  SHUT_OUT = 3,   // caught returning wrong results, or dead: given no work
}

// ---------------------------------------------------------------------------------------
// Functions and their types

// Names one function a client wants the definition of (the first exathunk's FuncId).
struct FuncId {
  // The function's name as written in source, e.g. "+", "map", "sha256".
  1: string name,
}

// One node of a type written as a flat tree: the tree's root is named by an index
// (FuncDef.typeRoot) and each node names its children by index in the same list.
struct TypeNode {
  // What the node is: a base type, a type variable, a list, a function type or a data
  // type.
  1: TypeKind kind,
  // For CON the base type's name; for VAR the variable's name; for DATA the data type's
  // name; unset otherwise.
  2: optional string name,
  // For LIST the element type; for FUNCTION the parameter types then the result type;
  // for DATA the type arguments (empty or unset when it has none): indices into the same
  // TypeNode list (exathunk writes it in pre-order, root first, and a reader must not
  // assume more than that every index is in range and acyclic).
  3: optional list<i32> children,
}

// One type on its own as a flat tree (TypeNode list and its root), where a struct needs
// several types (the fields of a constructor, an instance's type, a method's type).
struct TypeTree {
  // The nodes, root first as exathunk writes them.
  1: list<TypeNode> nodes,
  // Index of the root node in nodes (0 as written by exathunk).
  2: i32 root,
}

// A typeclass constraint on a type variable of a signature, e.g. Num a, Hashable b.
struct TypeConstraint {
  // The class: a built-in one (Num, Eq, Ord, Show) or a class the node declares (see
  // ClassDef).
  1: string className,
  // The constrained type variable's name, as it appears in the TypeNodes.
  2: string typeVar,
}

// What a client needs to typecheck and compile a call to a function it does not have:
// its type (as text, to show and to parse back; and structured, for clients in other
// languages that should not parse exathunk types), its arity and each parameter's
// strictness.
struct FuncDef {
  // The function's name.
  1: string name,
  // The type in the library's signature syntax, constraints included, e.g.
  // "Num a => (-> a a a)", "(-> (List (Pair a b)) (Maybe b))", "Hashable a => (-> a
  // String)"; exathunk.types.parse_signature reads it back (with a TypeScope that knows
  // the data types and classes of getClassDefs when it names them).
  2: string typeText,
  // The same type (without constraints) as a flat tree, root first.
  3: list<TypeNode> typeNodes,
  // Index of the root node in typeNodes (0 as written by exathunk servers).
  4: i32 typeRoot,
  // The class constraints on the type's variables (empty for a monomorphic function).
  5: list<TypeConstraint> constraints,
  // One entry per parameter, in order: how the function treats that argument.
  6: list<Strictness> strictness,
  // Number of parameters (0 for a constant such as nil or bottom).
  7: i32 arity,
  // Where it comes from: "builtin" (the engine), "prelude" (written in exathunk) or
  // "host" (a Python function the node exports); routing and documentation use it.
  8: string origin,
  // One line of documentation, when the node has one.
  9: optional string doc,
}

// ---------------------------------------------------------------------------------------
// Data types (in programs, and advertised by getClassDefs)

// One constructor of a data type.
struct ConstructorDef {
  // The constructor's name, e.g. "Just", "Node", "Pt" (upper-case initial).
  1: string name,
  // Each field's type as text over the data type's parameters, in order: "a",
  // "(List a)", "Tree", "(Maybe Int)" (empty for a nullary constructor).
  2: list<string> fieldTypes,
  // Each field's record name, parallel to fieldTypes: "" for a positional field (a
  // record constructor names every field, and each name is an accessor function).
  3: list<string> fieldNames,
  // The same field types as flat trees, parallel to fieldTypes (the parameters are VAR
  // nodes named as in DataTypeDef.params).  Set in ClassDefs; unset in a ProgramGraph,
  // where the text is the contract (it is what Program.datatypes holds).
  4: optional list<TypeTree> fieldTypeTrees,
}

// A data type: its name, parameters and constructors.  In a ProgramGraph it mirrors
// exathunk.program.DataType field for field (constructor operands of the code index the
// flattened list of every type's constructors, in order; a constructor's position in its
// type is its tag).  In ClassDefs it also says where the type comes from and how it is
// written.
struct DataTypeDef {
  // The type's name, e.g. "Maybe", "Tree", "Point".
  1: string name,
  // The type parameters' names, in order ("a" "b" for (Pair a b); empty for Tree).
  2: list<string> params,
  // The constructors, in declaration order.
  3: list<ConstructorDef> constructors,
  // ClassDefs only: "prelude" (Pair, Maybe, Either: every node has them) or "library"
  // (declared by the node, Library.declare_data).
  4: optional string origin,
  // ClassDefs only: the declaration as written in the language, e.g.
  // "(data (Maybe a) (Nothing) (Just a))"; exathunk.parser.parse_declaration reads it
  // and Library.declare_data takes it as it is.
  5: optional string declText,
  // ClassDefs only: the built-in classes derived for the type (Eq, Ord, Show: those
  // every field type has, given the parameters have them).
  6: optional list<string> derives,
}

// ---------------------------------------------------------------------------------------
// Classes and instances: the typed contracts a node offers besides its functions

// One method of a class.
struct MethodDef {
  // The method's name, e.g. "hash": in a program it is called like a function.
  1: string name,
  // Its type in the library's signature syntax, the class's own constraint included and
  // variables named a, b, ... in order of appearance, e.g. "Hashable a => (-> a Int)".
  2: string typeText,
  // The same type (without constraints) as a flat tree.
  3: TypeTree type,
  // The constraints on its type variables (the class's own first among them, as text
  // order gives them).
  4: list<TypeConstraint> constraints,
  // True when the class gives a default definition (an instance may then leave the
  // method out).
  5: bool hasDefault,
}

// A class a node declares (Library.declare_class); the built-in Num, Eq, Ord and Show are
// not listed (every node has them).
struct ClassDef {
  // The class's name, e.g. "Hashable".
  1: string name,
  // The name of its type variable as declared, e.g. "a".
  2: string param,
  // Its superclasses' names (built-in or declared), e.g. ["Eq"] for
  // (class (=> (Eq a) (Keyed a)) ...).
  3: list<string> superclasses,
  // Its methods, in declaration order.
  4: list<MethodDef> methods,
  // Where it comes from: "library" (declared by the node).
  5: string origin,
  // The declaration as written in the language (default methods included), e.g.
  // "(class (Hashable a) (hash (-> a Int)))"; Library.declare_class takes it as it is.
  6: string declText,
}

// An instance a node offers: a class implemented for one type by Python functions on the
// node (Library.register_instance).  A program that uses it runs only on a node that
// offers it.
struct InstanceDef {
  // The class, e.g. "Hashable".
  1: string className,
  // The instance's type as written, e.g. "String", "Point", "(List a)" (an instance for
  // every element type).
  2: string typeText,
  // The same type as a flat tree.
  3: TypeTree type,
  // The type's head, by which instances are keyed and named: "String", "List", "Point".
  // "className head" ("Hashable String") names the instance everywhere (CheckedModule,
  // error messages, the broker's routing).
  4: string head,
  // Where it comes from: "host" (implemented in Python by the node).
  5: string origin,
  // The methods the node implements, in the class's order; the others take the class's
  // default.
  6: list<string> methods,
  // The host function behind each implemented method, parallel to methods: named
  // "method@Class Head" (e.g. "hash@Hashable String"), with its type at this instance
  // ("(-> String Int)") and its strictness.  A compiled program calls them as host
  // functions (HostFunctionRef).
  7: list<FuncDef> methodDefs,
  // The instance's head as a declaration without bodies, e.g.
  // "(instance (Hashable String))": for display; the bodies are the node's.
  8: string declText,
}

// What getClassDefs advertises: every data type, class and instance a program compiled
// against the node may use beyond the built-ins.  With getFuncDefs it is all a client
// needs to typecheck and compile locally (exathunk's own client builds a Library from
// both: declare_data and declare_class with the texts, then the functions, then
// register_instance with stubs that run only on the node).
struct ClassDefs {
  // The data types: the prelude's first, then the node's, in declaration order (a type
  // names only types before it or itself).
  1: list<DataTypeDef> dataTypes,
  // The node's classes, in declaration order (superclasses first).
  2: list<ClassDef> classes,
  // The node's instances, in registration order.
  3: list<InstanceDef> instances,
}

// ---------------------------------------------------------------------------------------
// Programs

// One lambda-lifted function (supercombinator) of a compiled program.
struct GraphFunction {
  // The function's name (a user define, a prelude function, or a generated name); for
  // messages and disassembly only: code refers to functions by index.
  1: string name,
  // Number of parameters it takes.
  2: i32 arity,
  // Number of local slots its frame needs (parameters included).
  3: i32 frameSize,
  // The bytecode: opcodes and their operands as 32-bit integers (exathunk.program
  // defines the opcodes); operands index the constant pools, the function list and the
  // host function list, and are validated before anything runs.
  4: list<i32> code,
  // Source line of each code word (parallel to code), for error positions; 0 where
  // unknown.  A word with bit 30 (1073741824) set is a line of the prelude (prelude.xt),
  // not of the user's source: errors name such code "prelude" and show no line for it.
  5: list<i32> lines,
  // Source column (1-based) of each code word, parallel to code; 0 where unknown.
  // Absent in format version 2 (then errors carry no column).
  6: optional list<i32> columns,
}

// A host function a program calls: the node that runs it must export a function of that
// name with that exact signature and strictness, or the request is refused.  A method of
// an instance the node implements in Python is a host function too, named
// "method@Class Type" (e.g. "hash@Hashable String").
struct HostFunctionRef {
  // Name of the host function.
  1: string name,
  // Its signature, as in FuncDef.typeText.
  2: string signature,
  // Strictness of each parameter.
  3: list<Strictness> strictness,
}

// A compiled program as flat, index-addressed lists: the form a client compiles to and
// ships when it typechecks on its own side (the seed's flow).  The server validates every
// index, opcode and count before running it; an ill-formed graph is an ExathunkException,
// never a crash.
struct ProgramGraph {
  // Version of the bytecode format; a server refuses versions it does not know.
  1: i32 formatVersion,
  // The functions; code refers to them by index in this list.
  2: list<GraphFunction> functions,
  // Integer constant pool (64-bit literals).
  3: list<i64> intConstants,
  // Double constant pool.
  4: list<double> doubleConstants,
  // String constant pool (string literals, error messages).
  5: list<string> stringConstants,
  // Host functions the code calls, by index in this list.
  6: list<HostFunctionRef> hostFunctions,
  // Index in functions of the entry point (a nullary function whose value is the result).
  7: i32 entry,
  // The program's result type as text, e.g. "(List Int)"; what the VarCont will carry.
  8: string resultType,
  // Every library name the program calls (built-ins, prelude and host functions,
  // instance methods such as "hash@Hashable String" included): a broker routes the
  // request only to workers that offer all of them.
  9: list<string> functionsUsed,
  // The data types the program builds, matches or receives (formatVersion 2 and later;
  // unset reads as none): constructor operands of the code index their flattened
  // constructor list.
  10: optional list<DataTypeDef> dataTypes,
}

// One evaluation request.  Exactly one of source, graph and programBytes is set.
struct EvalRequest {
  // Plain source text, parsed, typechecked and compiled on the server: the simplest form,
  // usable from any language with nothing but this IDL.
  1: optional string source,
  // A program compiled by the client, as a flat graph (readable from any language).
  2: optional ProgramGraph graph,
  // The same compiled program in exathunk's own serialised form (Program.to_bytes()):
  // versioned and validated on load; what exathunk's Python client ships in graph mode,
  // because it is smaller and much faster to encode and decode than the struct form.
  3: optional binary programBytes,
  // Limit on reduction steps for this run (the server caps it at its own maximum).
  4: optional i64 maxSteps,
  // Limit on heap for this run (the engine's unit; capped by the server).
  5: optional i64 maxHeap,
  // Limit on evaluation stack depth for this run (capped by the server).
  6: optional i64 maxDepth,
  // Wall-clock limit in milliseconds (capped by the server); passing it is a
  // LimitExceeded with limit "timeout".
  7: optional i32 timeoutMs,
  // An opaque id the client chooses, echoed back in RemoteThunk and VarCont so that a
  // client can match replies to requests (and a broker can trace them).
  8: optional string requestId,
  // When true, the server neither answers from nor fills its result cache (for
  // benchmarks, and for a broker's verification re-runs).
  9: optional bool noCache,
  // Set by a broker on the requests it forwards: the worker may send parts of the
  // program (sub-thunks) back to it.  A plain client leaves it unset, and every
  // sub-thunk is then evaluated on the node itself.
  10: optional SubThunkPlan subThunks,
  // For a broker: when true, the client accepts a value nobody could check (one that
  // only one worker could compute, with no second worker and no way for the broker to
  // run it itself): it comes back with RunStats.verifiedBy "none" instead of the
  // Unverifiable error a broker answers by default.  A worker node ignores it.
  11: optional bool allowUnchecked,
}

// How a worker hands parts of a request's program to other nodes.  Sub-thunks are
// (par-map f xs) elements, closed (par e) expressions and calls of the host functions
// and instances the worker does not offer; each is a closed sub-program in source text
// (the program's declarations, then one expression with its arguments as literals),
// sent back with submitEvalRequest and awaited with thunkWait: the caller routes, checks
// and caches it like any request, and the worker never needs to know who computes it.
struct SubThunkPlan {
  // The port on which the caller takes sub-thunks, on the host the request came from
  // (a request cannot aim a worker at a third party).
  1: i32 callbackPort,
  // The host functions the program uses that this worker does not offer (from the
  // caller's getFuncDefs): the worker compiles the program with a stub for each, whose
  // every call is a sub-thunk.  Each must be strict in every parameter (its arguments
  // travel as values).
  2: list<FuncDef> delegatedFunctions,
  // Likewise for instances the program uses that this worker does not offer (their
  // classes the worker declares itself).
  3: list<InstanceDef> delegatedInstances,
  // The request's id at the caller, sent back as each sub-thunk's requestId prefix, so
  // that the caller can count a program's sub-thunks.
  4: optional string parent,
}

// A handle on a remote computation, returned by submitEvalRequest.
struct RemoteThunk {
  // Server-chosen opaque id; valid until the result expires (see thunkGet).
  1: string id,
  // The client's requestId, if it gave one.
  2: optional string requestId,
  // Content hash of the compiled program (Program.digest), when known at submit time.
  3: optional string digest,
}

// ---------------------------------------------------------------------------------------
// Results

// One node of a value written as a flat tree: the tree's root is VarCont.root; a LIST
// node names its elements and a DATA node its fields by index in the same list.  Exactly
// the field for its kind is set (for DATA: constructor, and children).
struct ValueNode {
  // Which field holds the value.
  1: ValueKind kind,
  // For INT.
  2: optional i64 intValue,
  // For DOUBLE.
  3: optional double doubleValue,
  // For BOOL.
  4: optional bool boolValue,
  // For STRING.
  5: optional string stringValue,
  // For LIST: the indices of the elements, in order (empty for the empty list); for
  // DATA: the indices of the fields, in the constructor's order (empty or unset for a
  // nullary constructor).  Each index is greater than this node's own index (a reader
  // rebuilds the value in one backward pass, and no cycle can be written); breadth-first
  // order satisfies it.
  6: optional list<i32> children,
  // For DATA: the constructor's name ("Just", "Pair", "Leaf"); the value's type
  // (VarCont.typeText) says which data type it belongs to.
  7: optional string constructor,
}

// Measurements of one evaluation (what it cost and where the time went).  An answer
// from the result cache carries only cached = true: the engine did no work for it.
struct RunStats {
  // Reduction steps the engine took.
  1: optional i64 steps,
  // Peak heap use, in the engine's unit (bytes).
  2: optional i64 peakHeap,
  // Garbage collections during the run.
  3: optional i32 gcRuns,
  // Time spent compiling (source requests) or loading (graph requests), in ms.
  4: optional double compileMs,
  // Time spent waiting for a free worker, in ms.
  5: optional double queueMs,
  // Time the engine ran, in ms.
  6: optional double runMs,
  // True when the value came from the result cache (same program digest).
  7: bool cached,
  // Which node computed it (a broker fills in the worker's address).
  8: optional string node,
  // Who checked the value (set by a broker; unset from a worker node, which checks
  // nothing but computes the value itself).  One of:
  //   "independent-node": at least two workers computed it independently and agreed
  //                       (by the broker's weighed vote, an established worker among
  //                       them);
  //   "unconfirmed-nodes": two or more workers agreed, none of them established yet
  //                       (a fresh deployment's host function, counted by headcount:
  //                       colluding new identities could fake it);
  //   "broker-engine":    the broker ran the (pure) program with its own engine and got
  //                       the same value (or this value, overruling the worker);
  //   "trusted-worker":   it rests on the word of a worker the operator marked trusted
  //                       (broker --trust or --oracle);
  //   "spot-checked":     one worker computed it, a proven one (a long streak of checked,
  //                       agreeing answers) whose results are checked at random, at a
  //                       rate that falls with its streak; this one was not checked;
  //   "none":             nobody checked it (only with EvalRequest.allowUnchecked).
  // A cached value keeps the verifiedBy it had when it was computed; a value computed
  // with sub-thunks has the weakest verifiedBy among them and its own.
  9: optional string verifiedBy,
}

// The value of a finished computation (the first exathunk's VarCont: a "variable
// container" holding the result).
struct VarCont {
  // The value as a flat tree of nodes.
  1: list<ValueNode> nodes,
  // Index of the root node in nodes.
  2: i32 root,
  // The value's type as text, e.g. "Int", "(List String)".
  3: string typeText,
  // What the run cost.
  4: RunStats stats,
  // Content hash of the program that produced it.
  5: optional string digest,
  // The requestId of the request, if it had one.
  6: optional string requestId,
}

// ---------------------------------------------------------------------------------------
// Exceptions

// One active frame of a failed run (ExathunkException.trace).
struct TraceFrame {
  // "user" (a define of the program), "main" (its main expression), "fused" (a fused
  // list pipeline of the program), "prelude", "built-in", "host" or "constructor".
  1: string kind,
  // The function's name as the user wrote it ("nth", "head", the define's name).
  2: string name,
  // 1-based line and column in the user's source of the expression the frame was
  // evaluating; absent for prelude, built-in and host frames.
  3: optional i32 line,
  4: optional i32 column,
}

// Any failure of the program or of the request: a parse, type or name error at compile
// time, an evaluation error or a passed limit at run time, or an invalid request.  The
// client raises the exathunk class named by kind, with the same message and position.
exception ExathunkException {
  // The exathunk error class: ParseError, TypeCheckError, UnknownFunctionError,
  // EvaluationError, LimitExceeded, RemoteError, Unverifiable, WorkerRefused
  // (registerWorker given the broker itself), Expired or ExathunkError.
  // Expired (from thunkGet, thunkWait, thunkWaitAny): the thunk was issued here but its
  // result is no longer kept (it finished more than the node's thunk_ttl ago, 300 s by
  // default, or was fetched and dropped under pressure); distinct from UnknownThunk, an
  // id never issued.  Submit the request again.
  // Unverifiable (from a broker): the value could be computed by one worker only and
  // nobody could check it (the message names the host functions only that worker
  // offers); resend with allowUnchecked to take it unchecked.
  1: string kind,
  // The message, without the rendered source line (the client has the source).
  2: string message,
  // 1-based line of the offending source, when known.
  3: optional i32 line,
  // 1-based column of the offending source, when known.
  4: optional i32 column,
  // For LimitExceeded: which limit (max_steps, max_heap, max_depth, timeout).
  5: optional string limit,
  // For EvaluationError: the innermost active frames of the run when it failed,
  // innermost first (a few), as the client shows them under the error.
  6: optional list<TraceFrame> trace,
  // For LimitExceeded: the limit's value (steps, bytes, frames, or ms for timeout).
  7: optional i64 limitValue,
  // For LimitExceeded: what the run had used when it stopped, in the same unit.
  8: optional i64 limitUsed,
}

// thunkGet (or thunkWait when its timeout passes) on a computation that has not finished.
exception NotDone {
  // Always "NotDone".
  1: string kind,
  // Says what it is waiting for.
  2: string message,
  // Unused (no source position); present so that every exception has the same shape.
  3: optional i32 line,
  // Unused, as line.
  4: optional i32 column,
  // QUEUED or RUNNING.
  5: ThunkState state,
}

// The server refuses new work because its queue is full or it is shutting down: the
// bounded answer instead of an unbounded queue.  Retrying later (or elsewhere) is safe.
exception Overloaded {
  // "Overloaded", or "ShuttingDown" while the server drains before it stops.
  1: string kind,
  // Says which bound was hit.
  2: string message,
  // Unused, as in NotDone.
  3: optional i32 line,
  // Unused, as in NotDone.
  4: optional i32 column,
  // A hint: how long to wait before retrying, in ms.
  5: i32 retryAfterMs,
}

// The thunk id is unknown: never issued here (or issued by another server), or expired so
// long ago that the server no longer remembers it.  A recently expired result is the
// ExathunkException of kind Expired instead.
exception UnknownThunk {
  // Always "UnknownThunk".
  1: string kind,
  // Names the id.
  2: string message,
  // Unused, as in NotDone.
  3: optional i32 line,
  // Unused, as in NotDone.
  4: optional i32 column,
}

// registerWorker sent to a plain worker: only a broker takes workers.
exception NotABroker {
  // Always "NotABroker".
  1: string kind,
  // Says so.
  2: string message,
  // Unused, as in NotDone.
  3: optional i32 line,
  // Unused, as in NotDone.
  4: optional i32 column,
}

// The node requires the deployment's shared token (`--token-file`) and this connection has
// not presented the right one.  Every method declares it, as field 9 of its throws (an
// older client that does not know the field sees an empty reply, not a dropped
// connection).  A connection authenticates once, with authenticate; see docs/security.md.
exception AuthenticationError {
  // "AuthenticationRequired": the call came before a successful authenticate on this
  // connection.  "AuthenticationFailed": authenticate was given a wrong token (the node
  // then closes the connection after this reply).
  1: string kind,
  // Says which method needed the token, or that the token was wrong (never the token).
  2: string message,
  // Unused, as in NotDone.
  3: optional i32 line,
  // Unused, as in NotDone.
  4: optional i32 column,
}

// ---------------------------------------------------------------------------------------
// Batches, bids and statistics

// The outcome of one request of a batch: exactly one of value and error is set, so that
// one failing request does not fail the batch.
struct EvalOutcome {
  // The value, when the evaluation succeeded.
  1: optional VarCont value,
  // The error, when it failed.
  2: optional ExathunkException error,
}

// The outcome of one finished thunk, reported by thunkWaitAny.
struct ThunkOutcome {
  // The thunk's id.
  1: string thunkId,
  // The value, when it succeeded.
  2: optional VarCont value,
  // The error, when it failed.
  3: optional ExathunkException error,
  // True when it was cancelled (neither value nor error is set).
  4: bool cancelled,
}

// A worker's offer for one request, asked for by a broker before it places work.
struct Bid {
  // False when the worker cannot run the request (a function it does not offer, or it
  // is shutting down); the rest of the bid is then meaningless.
  1: bool canServe,
  // The price: the worker's own cost estimate, in estimated engine milliseconds.
  2: double price,
  // The worker's estimate of the latency from now to the result, in ms (queue included).
  3: double latencyEstimateMs,
  // How many requests are queued or running there now.
  4: i32 queueDepth,
  // True when the worker has the result cached (it would answer almost at once).
  5: bool cached,
  // The functions the request uses that this worker does not offer.
  6: list<string> missingFunctions,
}

// A broker's view of one worker (empty list on a worker).
struct WorkerStats {
  // host:port of the worker.
  1: string address,
  // ACTIVE, PROBATION or SHUT_OUT.
  2: WorkerState state,
  // The broker's trust in the worker, 0 (none) to 1 (full).
  3: double reputation,
  // The broker's moving estimate of the worker's latency, in ms.
  4: double latencyEstimateMs,
  // Fraction of the broker's requests this worker served (0 to 1).
  5: double shareOfWork,
  // Requests sent to it.
  6: i64 requests,
  // Requests it failed (timeouts, dropped connections, errors of its own).
  7: i64 failures,
  // Results of it that were checked and agreed.
  8: i64 verified,
  // Results of it that were checked and disagreed with the majority.
  9: i64 disagreed,
}

// Health and statistics of a node, for `exathunk status` and for brokers.
struct ServiceStats {
  // "worker" or "broker".
  1: string role,
  // exathunk version of the node.
  2: string version,
  // Seconds since the node started.
  3: double uptimeS,
  // RPC calls answered.
  4: i64 requests,
  // Programs evaluated by the engine (cache hits excluded).
  5: i64 evaluations,
  // Requests that ended in an error (of any kind).
  6: i64 errors,
  // Answers served from the result cache.
  7: i64 cacheHits,
  // Lookups that missed the result cache.
  8: i64 cacheMisses,
  // Results in the cache now.
  9: i32 cacheSize,
  // Evaluations running now.
  10: i32 running,
  // Evaluations waiting for a worker now.
  11: i32 queued,
  // The queue bound beyond which requests get Overloaded.
  12: i32 queueBound,
  // Number of evaluation workers.
  13: i32 workerThreads,
  // Thunks held in the thunk table now.
  14: i32 thunks,
  // Requests refused with Overloaded.
  15: i64 overloaded,
  // Runs stopped by the wall-clock limit.
  16: i64 timeouts,
  // Mean engine time of recent evaluations, in ms.
  17: double meanRunMs,
  // True while the node drains before stopping (new work is refused).
  18: bool draining,
  // How evaluations run: "threads" or "processes".
  19: string executionModel,
  // Connections open now.
  20: i32 connections,
  // Frames rejected as malformed or over a bound (hostile or broken clients).
  21: i64 rejectedFrames,
  // For a broker, its workers; empty on a worker.
  22: list<WorkerStats> workers,
  // Sub-thunks: on a broker, the sub-thunk requests its workers sent back (par-map
  // elements, closed par expressions, delegated host functions and instances); on a
  // worker, the sub-thunks its runs sent to their callers.
  23: optional i64 subThunks,
  // On a broker: requests answered by sharing another request's run of the same program
  // while it was in flight (equal sub-computations computed once; cacheHits counts those
  // answered after it finished).
  24: optional i64 sharedRuns,
  // On a broker: requests planned across several workers (some of the functions or
  // instances they use delegated to other workers as sub-thunks).
  25: optional i64 splitRequests,
  // Calls refused for want of authentication (AuthenticationRequired) plus wrong tokens
  // given to authenticate (AuthenticationFailed); 0 on a node without a token.
  26: optional i64 authRefused,
  // A random id (32 hex digits) the node draws when it starts, new at every start: a
  // broker asks a candidate worker for it and refuses (WorkerRefused) one that reports
  // the broker's own id, i.e. an address that reaches the broker itself.  Unset on nodes
  // older than the field.
  27: optional string nodeId,
}

// ---------------------------------------------------------------------------------------
// The service

service RemoteExecutionService {
  // Authenticate this connection with the deployment's shared token (the contents of the
  // node's `--token-file`, surrounding white space stripped): every later call on the same
  // connection is authenticated, so the token is checked once per connection, not per
  // call.  True when the node checks tokens and this one matches; false when the node
  // checks none (the token is then ignored, so a client may always send it).  A wrong
  // token is AuthenticationError of kind AuthenticationFailed, after which the node closes
  // the connection (one guess per connection).  A node with a token answers any other
  // method called before this one with AuthenticationError of kind
  // AuthenticationRequired (a broker only registerWorker, unless it requires client tokens
  // too).  The token travels in clear unless the connection is TLS (`--tls-cert`).
  bool authenticate(1: string token)
    throws (1: ExathunkException err,
            9: AuthenticationError authError),

  // The definitions of the named functions (all the node offers when funcIds is empty):
  // what a client needs to typecheck and compile locally.  An unknown name is an
  // ExathunkException of kind UnknownFunctionError.
  list<FuncDef> getFuncDefs(1: list<FuncId> funcIds)
    throws (1: ExathunkException err,
            9: AuthenticationError authError),

  // Start evaluating a program and return a handle at once.  A program that does not
  // compile fails here (kind ParseError, TypeCheckError...); run-time errors come from
  // thunkGet / thunkWait.  Overloaded also when this client (this connection) already
  // holds its quota of submitted, unfetched thunks (max_thunks_per_client), or the
  // thunk table is full and this client holds at least its share: other clients'
  // submits and results are unaffected.
  RemoteThunk submitEvalRequest(1: EvalRequest evalRequest)
    throws (1: ExathunkException err, 2: Overloaded overloaded,
            9: AuthenticationError authError),

  // The value of a finished computation; NotDone while it is queued or running.  Results
  // are kept until they expire (thunk_ttl after they finish, fetched or not); then the
  // ExathunkException of kind Expired.  A result nobody has fetched is never dropped
  // before it expires.
  VarCont thunkGet(1: RemoteThunk thunk)
    throws (1: ExathunkException err, 2: NotDone notDone, 3: UnknownThunk unknownThunk,
            9: AuthenticationError authError),

  // As thunkGet, but blocks until the computation finishes or timeoutMs passes (then
  // NotDone).  The server caps timeoutMs at 2000 ms so that the reply always comes before a
  // client's socket timeout (thriftpy2's default is 3 s): a client waits longer by looping.
  VarCont thunkWait(1: RemoteThunk thunk, 2: i32 timeoutMs)
    throws (1: ExathunkException err, 2: NotDone notDone, 3: UnknownThunk unknownThunk,
            9: AuthenticationError authError),

  // Blocks until at least one of the thunks has finished (or timeoutMs passes, capped as
  // in thunkWait) and returns the outcomes of all that have finished (an empty list on
  // timeout): one waiter can serve many futures.  Unknown ids come back as an outcome
  // whose error has kind UnknownThunk.
  list<ThunkOutcome> thunkWaitAny(1: list<RemoteThunk> thunks, 2: i32 timeoutMs)
    throws (1: ExathunkException err,
            9: AuthenticationError authError),

  // Cancel a computation: a queued one never runs, a running one is abandoned (its worker
  // finishes within its limits); true if it had not finished yet.
  bool thunkCancel(1: RemoteThunk thunk)
    throws (1: ExathunkException err, 2: UnknownThunk unknownThunk,
            9: AuthenticationError authError),

  // Compile, run and return the value in one round trip: the fast path.
  VarCont evaluate(1: EvalRequest evalRequest)
    throws (1: ExathunkException err, 2: Overloaded overloaded,
            9: AuthenticationError authError),

  // submitEvalRequest for many requests in one round trip; a request that fails to
  // compile gets a thunk that fails, so that one bad request does not fail the batch.
  list<RemoteThunk> submitBatch(1: list<EvalRequest> evalRequests)
    throws (1: ExathunkException err, 2: Overloaded overloaded,
            9: AuthenticationError authError),

  // evaluate for many requests in one round trip, outcomes in request order.
  list<EvalOutcome> evaluateBatch(1: list<EvalRequest> evalRequests)
    throws (1: ExathunkException err, 2: Overloaded overloaded,
            9: AuthenticationError authError),

  // Health and statistics.
  ServiceStats getStats()
    throws (1: ExathunkException err,
            9: AuthenticationError authError),

  // The data types, classes and instances the node offers (see ClassDefs): with
  // getFuncDefs, what a client needs to typecheck and compile against them locally.  A
  // broker answers with the union of its live workers' (one declaration per name: the
  // one most of them offer) and the instances any of them offers.
  ClassDefs getClassDefs()
    throws (1: ExathunkException err,
            9: AuthenticationError authError),

  // A worker's price and latency estimate for a request, asked for by a broker (the
  // market).  Compiles the request (cached) but does not run it.
  Bid requestBid(1: EvalRequest evalRequest)
    throws (1: ExathunkException err, 2: Overloaded overloaded,
            9: AuthenticationError authError),

  // A worker at host:port offers itself to a broker (`exathunk serve --join`); true when
  // accepted.  A plain worker answers NotABroker.  An address that reaches the broker
  // itself (its own port on a loopback, wildcard or local address, or a node whose
  // getStats reports the broker's nodeId) is an ExathunkException of kind WorkerRefused.
  bool registerWorker(1: string host, 2: i32 port)
    throws (1: ExathunkException err, 2: NotABroker notABroker,
            9: AuthenticationError authError),
}
