module Pop3Functional.Core.Tests.BodyDecoderTests

open System
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Pop3Functional.Core

let private latin1 (s: string) = Encoding.Latin1.GetBytes s
let private str (b: byte[]) = Encoding.Latin1.GetString b
let private show (s: string) = "\"" + Bytes.escapeControls s + "\""

/// What decoding a stream of chunks gave.
type private Decoded =
    {
        Body: byte[]
        Ended: bool
        BareLf: bool
        /// The bytes after the terminator in the chunk where it ended, then any later chunks.
        After: byte[]
    }

/// Drives the decoder as the session does: a cursor carried between chunks, starting at a line start.
/// Emitted slices are copied at once (they are only valid during the call).
let private decodeChunks (bareLf: bool) (chunks: byte[] list) =
    let body = ResizeArray<byte>()
    let after = ResizeArray<byte>()
    let mutable cursor = BodyCursor.LineStart
    let mutable ended = false
    let mutable bare = false

    for chunk in chunks do
        if ended then
            after.AddRange chunk
        else
            let p =
                BodyDecoder.decode bareLf cursor (ReadOnlyMemory chunk) 0 (fun m -> body.AddRange(m.ToArray()))

            cursor <- p.Cursor

            if p.Ended then
                ended <- true
                bare <- p.BareLfTerminator
                after.AddRange chunk[p.Next ..]
            else
                Expect.equal p.Next chunk.Length "a chunk without the terminator is consumed whole"

    {
        Body = body.ToArray()
        Ended = ended
        BareLf = bare
        After = after.ToArray()
    }

let private decodeOne bareLf (wire: string) = decodeChunks bareLf [ latin1 wire ]

let private splitAt (bytes: byte[]) (cuts: int list) =
    let cuts =
        (0
         :: (cuts
             |> List.filter (fun c -> c > 0 && c < bytes.Length)
             |> List.distinct
             |> List.sort))
        @ [ bytes.Length ]

    cuts |> List.pairwise |> List.map (fun (a, b) -> bytes[a .. b - 1])

/// The test-side stuffer (RFC 1939 §3): every line that starts with '.' gets one more '.',
/// then ".CRLF" ends the body. A line starts at the body's start and after every CRLF (an RFC
/// server), or after every LF (a bare-LF server, which the decoder follows only with the quirk).
let private stuffFor (bareLf: bool) (body: byte[]) =
    let out = ResizeArray<byte>(body.Length + body.Length / 8 + 3)
    let mutable lineStart = true
    let mutable previous = 0uy

    for b in body do
        if lineStart && b = Bytes.Dot then
            out.Add Bytes.Dot

        out.Add b
        lineStart <- b = Bytes.LF && (bareLf || previous = Bytes.CR)
        previous <- b

    out.AddRange [| Bytes.Dot; Bytes.CR; Bytes.LF |]
    out.ToArray()

let private stuff = stuffFor false

/// A body of arbitrary bytes, rich in '.', CR and LF, that ends in CRLF or is empty.
let private genBody (maxLength: int) =
    gen {
        let! n =
            Gen.frequency
                [
                    1, Gen.constant 0
                    6, Gen.choose (0, min 64 maxLength)
                    3, Gen.choose (0, maxLength)
                ]

        let! bs =
            Gen.arrayOfLength
                n
                (Gen.frequency
                    [
                        4, Gen.elements [ Bytes.Dot; Bytes.CR; Bytes.LF ]
                        1, Gen.constant Bytes.Nul
                        6, Gen.choose (0, 255) |> Gen.map byte
                    ])

        return
            if n = 0 then
                [||]
            else
                Array.append bs [| Bytes.CR; Bytes.LF |]
    }

let private propConfig n =
    { FsCheckConfig.defaultConfig with
        maxTest = n
    }

/// A retrieval with stuffing at chunk-sensitive places, followed by the next reply.
let private fixtureWire =
    latin1 "Subject: x\r\n\r\n..dot\r\n...\r\n. \r\n..\r\n.\rx\r\nend\r\n.\r\n+OK next\r\n"

let private fixtureBody =
    latin1 "Subject: x\r\n\r\n.dot\r\n..\r\n \r\n.\r\n\rx\r\nend\r\n"

[<Tests>]
let tests =
    testList
        "BodyDecoderTests"
        [
            testList
                "dot-unstuffing (RFC 1939 §3; attack catalogue row 20)"
                [
                    for wire, body in
                        [
                            "abc\r\n.\r\n", "abc\r\n"
                            "..x\r\n.\r\n", ".x\r\n"
                            "...\r\n.\r\n", "..\r\n"
                            ". \r\n.\r\n", " \r\n"
                            "..\r\n.\r\n", ".\r\n"
                            ".\r\n", ""
                            "\r\n.\r\n", "\r\n"
                            "x.\r\n.\r\n", "x.\r\n"
                            "a\r\n..\r\n..\r\n.\r\n", "a\r\n.\r\n.\r\n"
                            ".\rx\r\n.\r\n", "\rx\r\n"
                            ".\r.\r\n.\r\n", "\r.\r\n"
                            "a\rb\r\n.\r\n", "a\rb\r\n"
                            "a\r.\r\n.\r\n", "a\r.\r\n"
                            "\r\r\n.\r\n", "\r\r\n"
                            "a\000b\000\r\n\000\r\n.\r\n", "a\000b\000\r\n\000\r\n"
                            "line\r\n\r\n.\r\n", "line\r\n\r\n"
                            // Only CRLF starts a line without the bare-LF quirk: this dot is data.
                            "a\n.b\r\n.\r\n", "a\n.b\r\n"
                            "ab\n.\r\ncd\r\n.\r\n", "ab\n.\r\ncd\r\n"
                        ] do
                        testCase $"{show wire} -> {show body}"
                        <| fun () ->
                            let d = decodeOne false wire
                            Expect.isTrue d.Ended "ended"
                            Expect.equal (str d.Body) body "body"
                            Expect.isFalse d.BareLf "CRLF terminator"
                            Expect.isEmpty d.After "nothing after"
                ]

            testList
                "the terminator"
                [
                    testCase "'.' alone on a line ends the body; Next points after it"
                    <| fun () ->
                        let chunk = latin1 "a\r\n.\r\n+OK next\r\n"

                        let p =
                            BodyDecoder.decode false BodyCursor.LineStart (ReadOnlyMemory chunk) 0 ignore

                        Expect.isTrue p.Ended "ended"
                        Expect.equal p.Next 6 "after .CRLF"
                        Expect.equal p.Cursor BodyCursor.LineStart "cursor reset"
                    testCase "bytes after the terminator belong to the next reply"
                    <| fun () ->
                        let d = decodeOne false "a\r\n.\r\n+OK next\r\n.\r\n"
                        Expect.equal (str d.Body) "a\r\n" "body"
                        Expect.equal (str d.After) "+OK next\r\n.\r\n" "the rest is left for the next reply"
                    testCase "decoding from a start offset"
                    <| fun () ->
                        let chunk = latin1 "+OK 3 octets\r\nab\r\n.\r\nZ"
                        let out = ResizeArray<byte>()

                        let p =
                            BodyDecoder.decode false BodyCursor.LineStart (ReadOnlyMemory chunk) 14 (fun m ->
                                out.AddRange(m.ToArray()))

                        Expect.isTrue p.Ended "ended"
                        Expect.equal (str (out.ToArray())) "ab\r\n" "body"
                        Expect.equal p.Next (chunk.Length - 1) "Next is absolute, before Z"
                    testCase "'.' CR followed by a non-LF is stuffing: the CR is data"
                    <| fun () ->
                        let d = decodeOne false ".\r.\r\n.\r\n"
                        Expect.equal (str d.Body) "\r.\r\n" "stuffing"
                    testCase "a '.' not at a line start does not end the body"
                    <| fun () ->
                        let d = decodeOne false "a.\r\n"
                        Expect.isFalse d.Ended "not ended"
                        Expect.equal (str d.Body) "a.\r\n" "data"
                    testCase "without the quirk, '.' LF is a stuffed line, not the end"
                    <| fun () ->
                        let d = decodeOne false "a\r\n.\nb\r\n.\r\n"
                        Expect.isTrue d.Ended "ended at .CRLF"
                        Expect.equal (str d.Body) "a\r\n\nb\r\n" "'.' LF unstuffed to LF"
                        Expect.isFalse d.BareLf "CRLF terminator"
                    testCase "with the BareLineFeed quirk, '.' LF ends the body and is flagged"
                    <| fun () ->
                        let d = decodeOne true "a\n.\n+OK next\n"
                        Expect.isTrue d.Ended "ended"
                        Expect.equal (str d.Body) "a\n" "body"
                        Expect.isTrue d.BareLf "BareLfTerminator"
                        Expect.equal (str d.After) "+OK next\n" "next reply"
                    testCase "with the BareLineFeed quirk, '.' LF split across chunks ends the body"
                    <| fun () ->
                        let d = decodeChunks true [ latin1 "a\n."; latin1 "\nrest" ]
                        Expect.isTrue d.Ended "ended"
                        Expect.isTrue d.BareLf "BareLfTerminator"
                        Expect.equal (str d.After) "rest" "next reply"
                    testCase "with the BareLineFeed quirk, a CRLF terminator is not flagged"
                    <| fun () ->
                        let d = decodeOne true "a\r\n.\r\n"
                        Expect.isTrue d.Ended "ended"
                        Expect.isFalse d.BareLf "not a bare LF terminator"
                    testCase "the terminator found at every chunk boundary, with the same body and the same rest"
                    <| fun () ->
                        for cut in 0 .. fixtureWire.Length do
                            let d = decodeChunks false (splitAt fixtureWire [ cut ])
                            Expect.isTrue d.Ended $"ended, split at {cut}"
                            Expect.equal (str d.Body) (str fixtureBody) $"body, split at {cut}"
                            Expect.equal (str d.After) "+OK next\r\n" $"rest, split at {cut}"
                    testCase "every three-way split gives the same body and rest"
                    <| fun () ->
                        for a in 1 .. fixtureWire.Length - 1 do
                            for b in a + 1 .. fixtureWire.Length - 1 do
                                let d = decodeChunks false (splitAt fixtureWire [ a; b ])
                                Expect.equal (str d.Body) (str fixtureBody) $"body, split at {a}, {b}"
                                Expect.equal (str d.After) "+OK next\r\n" $"rest, split at {a}, {b}"
                    testCase "one byte at a time gives the same body and rest"
                    <| fun () ->
                        let d = decodeChunks false [ for b in fixtureWire -> [| b |] ]
                        Expect.equal (str d.Body) (str fixtureBody) "body"
                        Expect.equal (str d.After) "+OK next\r\n" "rest"
                    testCase "every strict prefix of the fixture does not end"
                    <| fun () ->
                        let terminatorEnd = fixtureWire.Length - "+OK next\r\n".Length

                        for n in 0 .. terminatorEnd - 1 do
                            let d = decodeChunks false [ fixtureWire[.. n - 1] ]
                            Expect.isFalse d.Ended $"prefix of {n}"
                    testCase "empty chunks change nothing, whatever the cursor"
                    <| fun () ->
                        for cursor in
                            [
                                BodyCursor.LineStart
                                BodyCursor.MidLine
                                BodyCursor.HeldDot
                                BodyCursor.HeldDotCr
                            ] do
                            let p =
                                BodyDecoder.decode false cursor ReadOnlyMemory<byte>.Empty 0 (fun _ ->
                                    failtest "emitted")

                            Expect.equal p.Cursor cursor "cursor kept"
                            Expect.isFalse p.Ended "not ended"
                    testCase "data slices are slices of the chunk, not copies"
                    <| fun () ->
                        let chunk = latin1 "hello\r\nworld\r\n.\r\n"

                        BodyDecoder.decode false BodyCursor.LineStart (ReadOnlyMemory chunk) 0 (fun m ->
                            let ok, segment = Runtime.InteropServices.MemoryMarshal.TryGetArray m
                            Expect.isTrue (ok && Object.ReferenceEquals(segment.Array, chunk)) "slice of the chunk")
                        |> ignore
                ]

            testList
                "stuff → decode round trip"
                [
                    testCase "the stuffer itself (RFC 1939 §3 example lines)"
                    <| fun () ->
                        Expect.equal (str (stuff (latin1 ".x\r\n..\r\nok\r\n"))) "..x\r\n...\r\nok\r\n.\r\n" "stuffed"
                        Expect.equal (str (stuff [||])) ".\r\n" "empty body"

                    testPropertyWithConfig (propConfig 100) "bodies up to 2 KiB, split at every byte position"
                    <| Prop.forAll (Arb.fromGen (genBody 2048)) (fun body ->
                        for bareLf in [ false; true ] do
                            let wire = stuffFor bareLf body

                            for cut in 0 .. wire.Length do
                                let d = decodeChunks bareLf (splitAt wire [ cut ])
                                Expect.isTrue d.Ended $"ended (split at {cut})"
                                Expect.equal d.Body body $"body (split at {cut}, bareLf {bareLf})"
                                Expect.isEmpty d.After "no bytes beyond the terminator"
                                Expect.isFalse d.BareLf "a CRLF terminator")

                    testPropertyWithConfig
                        (propConfig 60)
                        "bodies up to 64 KiB, split at random places, then followed by the next reply"
                    <| Prop.forAll
                        (Arb.fromGen (Gen.zip (genBody 65536) (Gen.listOf (Gen.choose (0, 70000)))))
                        (fun (body, cuts) ->
                            let wire = Array.append (stuff body) (latin1 "+OK next\r\n")
                            let d = decodeChunks false (splitAt wire cuts)
                            Expect.isTrue d.Ended "ended"
                            Expect.equal d.Body body "body"
                            Expect.equal (str d.After) "+OK next\r\n" "the next reply is left intact")

                    testPropertyWithConfig (propConfig 100) "every strict prefix of an encoded body does not end"
                    <| Prop.forAll (Arb.fromGen (genBody 512)) (fun body ->
                        let wire = stuff body

                        for n in 0 .. wire.Length - 1 do
                            let d = decodeChunks false [ wire[.. n - 1] ]
                            Expect.isFalse d.Ended $"prefix of {n} of {wire.Length}"
                            // Never more than the body, and always a prefix of it: no terminator byte leaks.
                            Expect.isLessThanOrEqual d.Body.Length body.Length "no more than the body"
                            Expect.equal d.Body body[.. d.Body.Length - 1] "a prefix of the body")

                    testPropertyWithConfig
                        (propConfig 200)
                        "the decoder never emits the terminator's bytes, even byte by byte"
                    <| Prop.forAll (Arb.fromGen (genBody 256)) (fun body ->
                        let wire = Array.append (stuff body) (latin1 "X")
                        let d = decodeChunks false [ for b in wire -> [| b |] ]
                        Expect.equal d.Body body "exactly the body"
                        Expect.equal (str d.After) "X" "the byte after the terminator is not consumed")
                ]
        ]
