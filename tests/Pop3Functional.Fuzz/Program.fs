/// The fuzzing program.
///   <target>                       run under SharpFuzz/afl-fuzz (stdin or afl's shared memory)
///   --smoke <target> <dir>         run the target in-process over every file of dir
///   --smoke-all [root] [--junit F] run every target over root/<target> (default: the corpora
///                                  copied next to this program); optionally write a JUnit file
///   --trace <file>                 run the session target over one file, printing every step
///   --list                         print the target names
/// Smoke modes exit 1 when any input throws.
module Pop3Functional.Fuzz.Program

open System
open System.IO
open SharpFuzz

let private usage () =
    let names = Targets.all |> Array.map fst |> String.concat "|"
    eprintfn "Usage: Pop3Functional.Fuzz <%s>" names
    eprintfn "       Pop3Functional.Fuzz --smoke <target> <corpus dir>"
    eprintfn "       Pop3Functional.Fuzz --smoke-all [corpus root] [--junit FILE]"
    eprintfn "       Pop3Functional.Fuzz --trace <session script>"
    eprintfn "       Pop3Functional.Fuzz --list"
    2

/// Reads the whole test case afl hands over.
let private readAll (stream: Stream) =
    use memory = new MemoryStream()
    stream.CopyTo memory
    memory.ToArray()

let private fuzz (target: Targets.Target) =
    // Persistent in-process mode: an exception is reported to afl as a crash.
    Fuzzer.Run(fun stream ->
        let bytes = readAll stream
        target.Invoke(ReadOnlySpan bytes))

    0

let private exitCode (cases: Smoke.Case list) =
    if cases |> List.exists (fun c -> c.Failure.IsSome) then
        1
    else
        0

let private smokeAll (root: string) (junit: string option) =
    let cases =
        [
            for name, target in Targets.all do
                let dir = Path.Combine(root, name)

                if Directory.Exists dir then
                    yield! Smoke.runDirectory name target dir
                else
                    yield
                        {
                            Smoke.Target = name
                            Smoke.File = dir
                            Smoke.Failure = Some(DirectoryNotFoundException $"No corpus at {dir}" :> exn)
                        }
        ]

    Smoke.report cases
    junit |> Option.iter (fun path -> Smoke.writeJUnit path cases)
    exitCode cases

[<EntryPoint>]
let main argv =
    let defaultRoot = Path.Combine(AppContext.BaseDirectory, "corpus")

    match List.ofArray argv with
    | [ "--list" ] ->
        Targets.all |> Array.iter (fst >> printfn "%s")
        0
    | [ "--trace"; file ] ->
        let bytes = File.ReadAllBytes file

        Targets.sessionWith
            (fun input outputs ->
                printfn "> %A" input

                for o in outputs do
                    printfn "  %A" o)
            (ReadOnlySpan bytes)

        0
    | [ "--smoke"; name; dir ] ->
        match Targets.tryFind name with
        | Some target ->
            let cases = Smoke.runDirectory name target dir
            Smoke.report cases
            exitCode cases
        | None -> usage ()
    | "--smoke-all" :: rest ->
        match rest with
        | [] -> smokeAll defaultRoot None
        | [ root ] -> smokeAll root None
        | [ "--junit"; file ] -> smokeAll defaultRoot (Some file)
        | [ root; "--junit"; file ] -> smokeAll root (Some file)
        | _ -> usage ()
    | [ name ] ->
        match Targets.tryFind name with
        | Some target -> fuzz target
        | None -> usage ()
    | _ -> usage ()
