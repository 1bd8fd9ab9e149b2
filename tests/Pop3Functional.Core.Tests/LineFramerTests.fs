module Pop3Functional.Core.Tests.LineFramerTests

open System
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Pop3Functional.Core

let private latin1 (s: string) = Encoding.Latin1.GetBytes s
let private text (m: ReadOnlyMemory<byte>) = Encoding.Latin1.GetString(m.Span)
let private show (s: string) = "\"" + Bytes.escapeControls s + "\""

let private next max (partial: byte[]) (chunk: byte[]) start =
    LineFramer.next max (PartialLine.OfArray partial) (ReadOnlyMemory chunk) start

/// FramedLine with the held bytes of NeedMore as one array.
let private (|Framed|NeedMoreBytes|TooLongLine|) (framed: FramedLine) =
    match framed with
    | FramedLine.Line(line, next, bareLf) -> Framed(line, next, bareLf)
    | FramedLine.NeedMore p -> NeedMoreBytes(p.ToArray())
    | FramedLine.TooLong -> TooLongLine

let private expectLine (framed: FramedLine) =
    match framed with
    | Framed(line, nextAt, bareLf) -> text line, nextAt, bareLf
    | NeedMoreBytes partial -> failtestf "expected a line, got NeedMore %s" (show (Encoding.Latin1.GetString partial))
    | TooLongLine -> failtest "expected a line, got TooLong"

/// What a stream of chunks frames into: the lines (text, bare LF) and how it ended.
type private Framed =
    {
        Lines: (string * bool) list
        TooLong: bool
        Pending: string
        MaxPartial: int
    }

/// Drives the framer as the session does: a partial carried between chunks, positions within one.
let private frameAll (max: int) (chunks: byte[] seq) =
    let lines = ResizeArray()
    let mutable partial: byte[] = [||]
    let mutable tooLong = false
    let mutable maxPartial = 0

    for chunk in chunks do
        let mutable pos = 0

        while not tooLong && pos < chunk.Length do
            match next max partial chunk pos with
            | Framed(line, n, bareLf) ->
                lines.Add(text line, bareLf)
                partial <- [||]
                pos <- n
            | NeedMoreBytes p ->
                partial <- p
                maxPartial <- Math.Max(maxPartial, p.Length)
                pos <- chunk.Length
            | TooLongLine -> tooLong <- true

    {
        Lines = List.ofSeq lines
        TooLong = tooLong
        Pending = Encoding.Latin1.GetString partial
        MaxPartial = maxPartial
    }

let private splitAt (bytes: byte[]) (cuts: int list) =
    let cuts =
        (0
         :: (cuts
             |> List.filter (fun c -> c > 0 && c < bytes.Length)
             |> List.distinct
             |> List.sort))
        @ [ bytes.Length ]

    cuts |> List.pairwise |> List.map (fun (a, b) -> bytes[a .. b - 1])

/// A LIST answer followed by the next reply, as one server write.
let private fixture =
    latin1 "+OK 3 messages (620 octets)\r\n1 120\r\n2 200\r\n3 300\r\n.\r\n+OK bye\r\n"

let private fixtureLines =
    [ "+OK 3 messages (620 octets)"; "1 120"; "2 200"; "3 300"; "."; "+OK bye" ]
    |> List.map (fun l -> l, false)

let private propConfig n =
    { FsCheckConfig.defaultConfig with
        maxTest = n
    }

let private genLine =
    gen {
        let! n = Gen.choose (0, 80)
        // Any byte but LF; CR may appear inside a line (only CR before LF ends it).
        let byteGen =
            Gen.frequency [ 8, Gen.choose (0x20, 0x7E); 1, Gen.constant 13; 1, Gen.choose (0, 255) ]
            |> Gen.filter (fun b -> b <> 10)
            |> Gen.map byte

        let! bs = Gen.arrayOfLength n byteGen
        return bs
    }

[<Tests>]
let tests =
    testList
        "LineFramerTests"
        [
            testList
                "framing (RFC 1939 §3: lines end in CRLF)"
                [
                    testCase "a CRLF line"
                    <| fun () ->
                        let line, n, bareLf = next 8192 [||] (latin1 "+OK hi\r\n") 0 |> expectLine
                        Expect.equal (line, n, bareLf) ("+OK hi", 8, false) "line, next, bare LF"
                    testCase "an empty CRLF line"
                    <| fun () ->
                        Expect.equal (next 8192 [||] (latin1 "\r\n") 0 |> expectLine) ("", 2, false) "empty line"
                    testCase "a bare LF line is flagged"
                    <| fun () ->
                        Expect.equal (next 8192 [||] (latin1 "+OK hi\n") 0 |> expectLine) ("+OK hi", 7, true) "bare LF"
                    testCase "a bare LF alone is an empty, flagged line"
                    <| fun () -> Expect.equal (next 8192 [||] (latin1 "\n") 0 |> expectLine) ("", 1, true) "bare LF"
                    testCase "a CR inside a line is data"
                    <| fun () ->
                        Expect.equal
                            (next 8192 [||] (latin1 "a\rb\r\n") 0 |> expectLine)
                            ("a\rb", 5, false)
                            "inner CR kept"
                    testCase "CR CR LF keeps one CR in the line"
                    <| fun () ->
                        Expect.equal
                            (next 8192 [||] (latin1 "a\r\r\n") 0 |> expectLine)
                            ("a\r", 4, false)
                            "one CR stripped"
                    testCase "NUL bytes are kept (the grammar decides)"
                    <| fun () ->
                        Expect.equal
                            (next 8192 [||] (latin1 "a\000b\r\n") 0 |> expectLine)
                            ("a\000b", 5, false)
                            "NUL kept"
                    testCase "two lines in one chunk: Next points at the second"
                    <| fun () ->
                        let chunk = latin1 "+OK a\r\n+OK b\r\n"
                        let first, n1, _ = next 8192 [||] chunk 0 |> expectLine
                        let second, n2, _ = next 8192 [||] chunk n1 |> expectLine
                        Expect.equal (first, n1, second, n2) ("+OK a", 7, "+OK b", 14) "both lines"
                    testCase "an empty chunk needs more"
                    <| fun () ->
                        match next 8192 [||] [||] 0 with
                        | NeedMoreBytes p -> Expect.isEmpty p "nothing held"
                        | other -> failtestf "expected NeedMore, got %A" other
                    testCase "a start at the end of the chunk needs more and keeps the partial"
                    <| fun () ->
                        match next 8192 (latin1 "+O") (latin1 "xx") 2 with
                        | NeedMoreBytes p -> Expect.equal p (latin1 "+O") "partial unchanged"
                        | other -> failtestf "expected NeedMore, got %A" other
                    testCase "a line within one chunk is a slice of it (no copy)"
                    <| fun () ->
                        let chunk = latin1 "xx+OK hi\r\n"

                        match next 8192 [||] chunk 2 with
                        | Framed(line, _, _) ->
                            let ok, segment = Runtime.InteropServices.MemoryMarshal.TryGetArray line
                            Expect.isTrue ok "array-backed"
                            Expect.isTrue (Object.ReferenceEquals(segment.Array, chunk)) "same array as the chunk"
                            Expect.equal segment.Offset 2 "offset"
                        | other -> failtestf "expected a line, got %A" other
                ]

            testList
                "partial lines across chunks"
                [
                    testCase "a line split in two"
                    <| fun () ->
                        let partial =
                            match next 8192 [||] (latin1 "+OK hel") 0 with
                            | NeedMoreBytes p -> p
                            | other -> failtestf "expected NeedMore, got %A" other

                        Expect.equal partial (latin1 "+OK hel") "partial copied"

                        Expect.equal
                            (next 8192 partial (latin1 "lo\r\nrest") 0 |> expectLine)
                            ("+OK hello", 4, false)
                            "joined"
                    testCase "CR at the end of one chunk and LF at the start of the next is CRLF"
                    <| fun () ->
                        let r = frameAll 8192 [ latin1 "+OK hi\r"; latin1 "\n" ]
                        Expect.equal r.Lines [ "+OK hi", false ] "not a bare LF"
                    testCase "every two-way split of a multi-line fixture gives the same lines"
                    <| fun () ->
                        for cut in 0 .. fixture.Length do
                            let r = frameAll 8192 (splitAt fixture [ cut ])
                            Expect.equal r.Lines fixtureLines $"split at {cut}"
                            Expect.equal r.Pending "" $"nothing pending after split at {cut}"
                    testCase "every three-way split of a multi-line fixture gives the same lines"
                    <| fun () ->
                        for a in 1 .. fixture.Length - 1 do
                            for b in a + 1 .. fixture.Length - 1 do
                                let r = frameAll 8192 (splitAt fixture [ a; b ])
                                Expect.equal r.Lines fixtureLines $"split at {a}, {b}"
                    testCase "one byte at a time gives the same lines"
                    <| fun () ->
                        let r = frameAll 8192 [ for b in fixture -> [| b |] ]
                        Expect.equal r.Lines fixtureLines "byte by byte"
                    testCase "every strict prefix of a line yields NeedMore holding the prefix"
                    <| fun () ->
                        let line = latin1 "+OK 2 320\r\n"

                        for n in 0 .. line.Length - 1 do
                            match next 8192 [||] line[.. n - 1] 0 with
                            | NeedMoreBytes p -> Expect.equal p line[.. n - 1] $"prefix of {n}"
                            | other -> failtestf "prefix of %d: expected NeedMore, got %A" n other

                        Expect.equal
                            (next 8192 [||] line 0 |> expectLine)
                            ("+OK 2 320", line.Length, false)
                            "whole line"

                    testPropertyWithConfig
                        (propConfig 300)
                        "random lines split at random places frame back to the same lines"
                    <| Prop.forAll
                        (Arb.fromGen (
                            Gen.zip
                                (Gen.listOf (Gen.zip genLine (Gen.elements [ true; false ])))
                                (Gen.listOf (Gen.choose (0, 4000)))
                        ))
                        (fun (lines, cuts) ->
                            let lines =
                                lines
                                |> List.filter (fun (l, bareLf) ->
                                    not (bareLf && l.Length > 0 && l[l.Length - 1] = 13uy))

                            let stream =
                                [|
                                    for l, bareLf in lines do
                                        yield! l

                                        if not bareLf then
                                            yield 13uy

                                        yield 10uy
                                |]

                            let r = frameAll 8192 (splitAt stream cuts)

                            let expected =
                                lines |> List.map (fun (l, bareLf) -> Encoding.Latin1.GetString l, bareLf)

                            Expect.equal r.Lines expected "same lines and line ends"
                            Expect.equal r.Pending "" "nothing pending")
                ]

            testList
                "length limit (CVE-2013-1752)"
                [
                    let max = 64

                    testCase "a line of exactly MaxLineOctets including CRLF is accepted"
                    <| fun () ->
                        let chunk = Array.append (Array.create (max - 2) (byte 'a')) (latin1 "\r\n")
                        let line, n, _ = next max [||] chunk 0 |> expectLine
                        Expect.equal (line.Length, n) (max - 2, max) "accepted"

                    testCase "a line of MaxLineOctets + 1 including CRLF is TooLong"
                    <| fun () ->
                        let chunk = Array.append (Array.create (max - 1) (byte 'a')) (latin1 "\r\n")
                        Expect.equal (next max [||] chunk 0) FramedLine.TooLong "refused"

                    testCase "a bare-LF line of exactly MaxLineOctets is accepted"
                    <| fun () ->
                        let chunk = Array.append (Array.create (max - 1) (byte 'a')) (latin1 "\n")
                        let line, _, bareLf = next max [||] chunk 0 |> expectLine
                        Expect.equal (line.Length, bareLf) (max - 1, true) "accepted"

                    testCase "the limit counts the partial too"
                    <| fun () ->
                        let partial = Array.create (max - 4) (byte 'a')
                        let line, _, _ = next max partial (latin1 "bb\r\n") 0 |> expectLine
                        Expect.equal line.Length (max - 2) "exactly the limit, across chunks"
                        Expect.equal (next max partial (latin1 "bbb\r\n") 0) FramedLine.TooLong "one more octet"

                    testCase "the limit applies from the start position, not the chunk start"
                    <| fun () ->
                        let chunk =
                            Array.concat [ latin1 "ok\r\n"; Array.create (max - 2) (byte 'a'); latin1 "\r\n" ]

                        let _, n, _ = next max [||] chunk 0 |> expectLine
                        let line, _, _ = next max [||] chunk n |> expectLine
                        Expect.equal line.Length (max - 2) "second line at the limit"

                    testCase "the default limit: 8192 octets accepted, 8193 refused"
                    <| fun () ->
                        let ok = Array.append (Array.create 8190 (byte 'x')) (latin1 "\r\n")
                        let long = Array.append (Array.create 8191 (byte 'x')) (latin1 "\r\n")
                        let limit = Limits.Default.MaxLineOctets

                        Expect.equal
                            (next limit [||] ok 0 |> expectLine |> fun (l, _, _) -> l.Length)
                            8190
                            "8192 with CRLF"

                        Expect.equal (next limit [||] long 0) FramedLine.TooLong "8193 with CRLF"

                    testCase
                        "a never-ending line fed byte by byte is refused as soon as it cannot fit, holding less than the limit"
                    <| fun () ->
                        let mutable partial: byte[] = [||]
                        let mutable fed = 0
                        let mutable refused = false

                        while not refused && fed < 10 * max do
                            fed <- fed + 1

                            match next max partial [| byte 'a' |] 0 with
                            | NeedMoreBytes p ->
                                Expect.isLessThan p.Length max "the partial stays below the limit"
                                partial <- p
                            | TooLongLine -> refused <- true
                            | Framed _ -> failtest "no line end was sent"

                        Expect.isTrue refused "refused"
                        // With max-1 octets held, an LF could still complete a legal line; with max it cannot.
                        Expect.equal fed max "refused at the first octet that makes the line unable to fit"

                    testCase "a never-ending line in large chunks is refused without holding more than the limit"
                    <| fun () ->
                        let r = frameAll max [ for _ in 1..100 -> Array.create 7 (byte 'a') ]
                        Expect.isTrue r.TooLong "refused"
                        Expect.isLessThan r.MaxPartial max "never held the limit or more"

                    testCase "a 1 MB chunk with no line end is refused at once"
                    <| fun () ->
                        Expect.equal (next 8192 [||] (Array.create 1_000_000 (byte 'a')) 0) FramedLine.TooLong "refused"

                    testCase "a held partial one short of the limit is completed by a bare LF"
                    <| fun () ->
                        let partial = Array.create (max - 1) (byte 'a')
                        let line, _, bareLf = next max partial (latin1 "\n") 0 |> expectLine
                        Expect.equal (line.Length, bareLf) (max - 1, true) "accepted at the limit"
                ]
        ]
