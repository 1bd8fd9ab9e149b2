module Pop3Functional.Core.Tests.ApiDocsTests

// Checks the requirement "XML docs on every public member" of the core against the XML file the
// compiler writes (GenerateDocumentationFile), so a member added without /// fails here, by id.
//
// The rule: every public type of the core, and every public member declared on one, needs a
// non-empty <summary>. Ids follow the ECMA-334 Annex D format that the F# compiler emits:
//   T:Ns.Type           types and modules; nested types joined by "." ; generic arity kept ("Fifo`1")
//   T:Ns.Union.Case     union cases: F# documents a case as a type nested in its union, whether or
//                       not the case compiles to a nested class (so one id per case, never its
//                       NewCase method, static property or case class)
//   P:Ns.Type.Name      properties, record fields, module values (a non-function let compiles to a
//                       static property; a [<Literal>] compiles to a const field yet is still P:)
//   M:Ns.Type.Name(A,B) methods, module functions (curried arguments flattened), constructors as
//                       #ctor; no parentheses when there are no parameters; generic arguments in
//                       braces ("FSharpList{System.String}"), byref as "@", type parameters as `0
//                       (type) or ``0 (method)
//   F:Ns.Type.Name      enum values and public fields of classes
// Excluded, because the compiler writes them and no source line can carry their doc:
//   - anything marked [<CompilerGenerated>] (record and union Equals/GetHashCode/CompareTo and
//     ToString, union Tag and Is* properties) and the members of compiler-generated types;
//   - special-name methods (property getters and setters, the enum's value__ field);
//   - the NewCase methods, case properties and case fields of unions, and the types nested in a
//     union (case classes, Tags): all are covered by the union case's own T: id;
//   - the constructors of records and unions (generated from the fields).
// Members a programmer wrote by hand are included even when they override Object (a user
// ToString or Equals says what the text or the equality is). Type abbreviations (RequestId,
// Parsed<'T>) do not exist at run time, so reflection cannot list them; they are documented anyway.

open System
open System.IO
open System.Reflection
open System.Runtime.CompilerServices
open System.Xml.Linq
open Expecto
open Microsoft.FSharp.Core
open Microsoft.FSharp.Reflection
open Pop3Functional.Core

let private coreAssembly = typeof<Pop3Machine>.Assembly

let private xmlPath = Path.ChangeExtension(coreAssembly.Location, ".xml")

/// Member id -> summary text (trimmed), as the compiler wrote it.
let private summaries =
    lazy
        (let doc = XDocument.Load xmlPath

         doc.Descendants(XName.Get "member")
         |> Seq.map (fun m ->
             let summary = m.Element(XName.Get "summary")
             let text = if isNull summary then "" else summary.Value.Trim()
             m.Attribute(XName.Get "name").Value, text)
         |> Seq.groupBy fst
         |> Seq.map (fun (id, xs) -> id, xs |> Seq.map snd |> Seq.tryFind (fun s -> s <> "") |> Option.defaultValue "")
         |> Map.ofSeq)

let private isCompilerGenerated (m: MemberInfo) =
    m.IsDefined(typeof<CompilerGeneratedAttribute>, false)

let private mappingFlags (m: MemberInfo) =
    m.GetCustomAttributes(typeof<CompilationMappingAttribute>, false)
    |> Array.map (fun a ->
        (a :?> CompilationMappingAttribute).SourceConstructFlags
        &&& SourceConstructFlags.KindMask)

let private isUnion (t: Type) = FSharpType.IsUnion(t, true)
let private isRecord (t: Type) = FSharpType.IsRecord(t, true)

/// The id name of a type: namespace, enclosing types joined by ".", generic arity kept.
let rec private typeIdName (t: Type) =
    if t.IsNested then typeIdName t.DeclaringType + "." + t.Name
    elif String.IsNullOrEmpty t.Namespace then t.Name
    else t.Namespace + "." + t.Name

/// A parameter type as it appears inside M:...(...).
let rec private paramIdName (t: Type) =
    if t.IsByRef then
        paramIdName (t.GetElementType()) + "@"
    elif t.IsPointer then
        paramIdName (t.GetElementType()) + "*"
    elif t.IsArray then
        let rank = t.GetArrayRank()

        let dims =
            if rank = 1 then
                "[]"
            else
                "[" + String.Join(",", Array.replicate rank "0:") + "]"

        paramIdName (t.GetElementType()) + dims
    elif t.IsGenericParameter then
        (if isNull t.DeclaringMethod then "`" else "``")
        + string t.GenericParameterPosition
    elif t.IsGenericType then
        let def = typeIdName (t.GetGenericTypeDefinition())
        let tick = def.LastIndexOf '`'
        let name = if tick < 0 then def else def.Substring(0, tick)
        let args = t.GetGenericArguments() |> Array.map paramIdName
        name + "{" + String.Join(",", args) + "}"
    else
        typeIdName t

let private methodId (m: MethodBase) =
    let name = if m.IsConstructor then "#ctor" else m.Name

    let arity =
        if m.IsGenericMethod then
            "``" + string (m.GetGenericArguments().Length)
        else
            ""

    let ps = m.GetParameters()

    let args =
        if ps.Length = 0 then
            ""
        else
            "("
            + String.Join(",", ps |> Array.map (fun p -> paramIdName p.ParameterType))
            + ")"

    "M:" + typeIdName m.DeclaringType + "." + name + arity + args

/// True for the case classes and Tags class nested in a union, and for compiler-generated types.
let rec private isGeneratedType (t: Type) =
    isCompilerGenerated t
    || (t.IsNested && (isUnion t.DeclaringType || isGeneratedType t.DeclaringType))

let private declared =
    BindingFlags.Public
    ||| BindingFlags.Instance
    ||| BindingFlags.Static
    ||| BindingFlags.DeclaredOnly

/// Every id the rule requires a summary for, with a description for the failure message.
let private requiredIds () =
    [
        for t in coreAssembly.GetExportedTypes() do
            if not (isGeneratedType t) then
                let tid = typeIdName t
                yield "T:" + tid

                if isUnion t then
                    for case in FSharpType.GetUnionCases(t, true) do
                        yield "T:" + tid + "." + case.Name

                if t.IsEnum then
                    for f in t.GetFields(BindingFlags.Public ||| BindingFlags.Static) do
                        yield "F:" + tid + "." + f.Name
                else
                    // A module value is a P: id even when it compiles to a field ([<Literal>] constants).
                    let fieldKind = if FSharpType.IsModule t then "P:" else "F:"

                    for f in t.GetFields declared do
                        if not f.IsSpecialName && not (isCompilerGenerated f) then
                            yield fieldKind + tid + "." + f.Name

                    for p in t.GetProperties declared do
                        let flags = mappingFlags p

                        let unionPart =
                            isUnion t
                            && (flags
                                |> Array.exists (fun f ->
                                    f = SourceConstructFlags.UnionCase || f = SourceConstructFlags.Field))

                        if not (isCompilerGenerated p) && not unionPart then
                            yield "P:" + tid + "." + p.Name

                    for m in t.GetMethods declared do
                        let unionCase = mappingFlags m |> Array.contains SourceConstructFlags.UnionCase

                        if not m.IsSpecialName && not (isCompilerGenerated m) && not unionCase then
                            yield methodId m

                    if not (isRecord t) && not (isUnion t) then
                        for c in t.GetConstructors(BindingFlags.Public ||| BindingFlags.Instance) do
                            if not (isCompilerGenerated c) then
                                yield methodId c
    ]
    |> List.distinct

let private undocumented () =
    let docs = summaries.Force()

    requiredIds ()
    |> List.filter (fun id ->
        match docs.TryFind id with
        | Some s -> s = ""
        | None -> true)

[<Tests>]
let tests =
    testList
        "ApiDocsTests"
        [
            testCase "the core build writes its XML documentation next to the assembly"
            <| fun () ->
                Expect.isTrue
                    (File.Exists xmlPath)
                    $"{xmlPath} is missing: the core project needs <GenerateDocumentationFile>true</GenerateDocumentationFile>"

            testCase "the rule finds the public surface (it is not silently skipping members)"
            <| fun () ->
                let ids = requiredIds ()

                let has prefix =
                    ids |> List.exists (fun (id: string) -> id.StartsWith(prefix: string))
                // One id of each kind, written out as the compiler writes it.
                for id in
                    [
                        "T:Pop3Functional.Core.Pop3Machine"
                        "T:Pop3Functional.Core.Request.Retr"
                        "T:Pop3Functional.Core.Request.Stat"
                        "P:Pop3Functional.Core.Limits.MaxLineOctets"
                        "P:Pop3Functional.Core.Bytes.crlf"
                        "P:Pop3Functional.Core.Bytes.CR"
                        "M:Pop3Functional.Core.Pop3Machine.TryDequeue(Pop3Functional.Core.Pop3Output@)"
                        "M:Pop3Functional.Core.Pop3Machine.#ctor(Pop3Functional.Core.Options)"
                        "M:Pop3Functional.Core.Session.run(Pop3Functional.Core.SessionState,System.Collections.Generic.IEnumerable{Pop3Functional.Core.Input})"
                        "M:Pop3Functional.Core.Fifo`1.Enqueue(`0)"
                        "F:Pop3Functional.Core.Pop3EventKind.BodyData"
                    ] do
                    Expect.contains ids id $"the rule should require {id}"

                Expect.isFalse (has "M:Pop3Functional.Core.Request.NewRetr") "NewCase methods are covered by the case"
                Expect.isFalse (has "P:Pop3Functional.Core.Request.Tag") "Tag is compiler-generated"
                Expect.isFalse (has "P:Pop3Functional.Core.Request.IsRetr") "Is* properties are compiler-generated"
                Expect.isFalse (has "T:Pop3Functional.Core.Request.Tags") "Tags is compiler-generated"
                Expect.isFalse (has "M:Pop3Functional.Core.Limits.Equals") "record equality is compiler-generated"
                Expect.isGreaterThan ids.Length 300 "the core's public surface has several hundred members"

            testCase "every public type and member of the core has a non-empty <summary>"
            <| fun () ->
                let missing = undocumented ()

                if not missing.IsEmpty then
                    failtestf
                        "%d public members of Pop3Functional.Core have no /// summary (%s):\n  %s"
                        missing.Length
                        xmlPath
                        (String.Join("\n  ", missing))
        ]
