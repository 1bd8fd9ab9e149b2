/// Runs the targets in-process over their seed corpora: the short smoke CI runs (DESIGN §12).
module Pop3Functional.Fuzz.Smoke

open System
open System.IO
open System.Xml.Linq

/// One corpus file run through one target: None when it ran without an exception.
type Case =
    {
        Target: string
        File: string
        Failure: exn option
    }

let runOne (name: string) (target: Targets.Target) (file: string) =
    let bytes = File.ReadAllBytes file

    let failure =
        try
            target.Invoke(ReadOnlySpan bytes)
            None
        with e ->
            Some e

    {
        Target = name
        File = file
        Failure = failure
    }

/// Every file of the directory (not recursive: afl keeps its own state in subfolders), in name order.
let corpusFiles (dir: string) =
    Directory.EnumerateFiles dir |> Seq.sort |> List.ofSeq

let runDirectory (name: string) (target: Targets.Target) (dir: string) =
    corpusFiles dir |> List.map (runOne name target)

/// Prints each failure with its exception, then "target: N passed, N failed".
let report (cases: Case list) =
    for case in cases do
        match case.Failure with
        | Some e -> eprintfn "FAILED %s %s:\n%O" case.Target case.File e
        | None -> ()

    for name, group in cases |> List.groupBy (fun c -> c.Target) do
        let failed = group |> List.filter (fun c -> c.Failure.IsSome) |> List.length
        printfn "%s: %d passed, %d failed" name (group.Length - failed) failed

/// A JUnit file with one test case per corpus file, as the build's test summary reads them.
let writeJUnit (path: string) (cases: Case list) =
    let failures = cases |> List.filter (fun c -> c.Failure.IsSome) |> List.length

    let testCase (c: Case) =
        XElement(
            XName.Get "testcase",
            XAttribute(XName.Get "classname", "Pop3Functional.Fuzz.smoke." + c.Target),
            XAttribute(XName.Get "name", c.Target + "/" + Path.GetFileName c.File),
            (match c.Failure with
             | Some e ->
                 box (
                     XElement(
                         XName.Get "failure",
                         XAttribute(XName.Get "message", e.GetType().FullName + ": " + e.Message),
                         string e
                     )
                 )
             | None -> null)
        )

    let suite =
        XElement(
            XName.Get "testsuite",
            XAttribute(XName.Get "name", "Pop3Functional.Fuzz (smoke)"),
            XAttribute(XName.Get "tests", cases.Length),
            XAttribute(XName.Get "failures", failures),
            cases |> List.map testCase
        )

    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath path))
    |> ignore

    XDocument(XElement(XName.Get "testsuites", suite)).Save path
