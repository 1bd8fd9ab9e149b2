module Pop3Functional.Simulator.Tests.MessageContentTests

open System
open System.IO
open System.Text
open Expecto
open FsCheck
open Pop3Functional.Simulator

let private readInPieces (content: MessageContent) (piece: int) =
    let result = ResizeArray<byte>()
    let buffer = Array.zeroCreate<byte> piece
    let mutable offset = 0L
    let mutable go = true

    while go do
        let n = content.CopyTo(offset, Span buffer)

        if n = 0 then
            go <- false
        else
            result.AddRange(buffer[.. n - 1])
            offset <- offset + int64 n

    result.ToArray()

[<Tests>]
let tests =
    testList
        "MessageContent"
        [
            test "OfText turns bare LF into CRLF and keeps CRLF" {
                let content = MessageContent.OfText "a\nb\r\nc\n"
                Expect.equal (Encoding.ASCII.GetString(content.ToArray())) "a\r\nb\r\nc\r\n" "line ends"
                Expect.equal content.Length 9L "length"
            }

            test "Generated content has exactly the asked length and ends with CRLF" {
                for length in [ 2L; 3L; 100L; 4096L; 100_000L ] do
                    let bytes = (MessageContent.Generated(length, 7)).ToArray()
                    Expect.equal (int64 bytes.Length) length "length"
                    Expect.equal bytes[bytes.Length - 2 ..] [| 13uy; 10uy |] "ends with CRLF"
            }

            test "Generated content never ends with a bare CR, whatever the length" {
                for length in 2L .. 400L do
                    let text = Encoding.ASCII.GetString((MessageContent.Generated(length, 7)).ToArray())
                    let lines = text.Split("\r\n")

                    Expect.isTrue
                        (lines |> Array.forall (fun l -> not (l.Contains '\r' || l.Contains '\n')))
                        $"length {length}"
            }

            test "Generated content has no bare CR or LF and includes lines starting with a dot" {
                let text =
                    Encoding.ASCII.GetString((MessageContent.Generated(20_000L, 3)).ToArray())

                let lines = text.Split("\r\n")
                Expect.isTrue (lines |> Array.forall (fun l -> not (l.Contains '\r' || l.Contains '\n'))) "only CRLF"
                Expect.isTrue (lines |> Array.exists (fun l -> l.StartsWith '.')) "dot lines"
                Expect.stringStarts text "From: " "headers first"
            }

            testProperty "Generated content reads the same in any piece size and depends only on the seed"
            <| fun (seed: int) (PositiveInt piece) ->
                let content = MessageContent.Generated(3000L, seed)
                let whole = content.ToArray()

                readInPieces content (min piece 5000) = whole
                && (MessageContent.Generated(3000L, seed)).ToArray() = whole

            test "Stream content opens a fresh stream per read and serves any offset" {
                let bytes = Array.init 10_000 byte
                let mutable opened = 0

                let content =
                    MessageContent.OfStream(
                        Func<Stream>(fun () ->
                            opened <- opened + 1
                            new MemoryStream(bytes) :> Stream),
                        int64 bytes.Length
                    )

                Expect.equal (readInPieces content 777) bytes "all bytes"
                Expect.isGreaterThan opened 1 "a stream per read"
            }

            test "Concat serves the parts in order across boundaries" {
                let a = MessageContent.OfText "one\n"
                let b = MessageContent.Generated(500L, 1)
                let c = MessageContent.OfText "three\n"
                let all = MessageContent.Concat [ a; b; c ]
                Expect.equal all.Length (a.Length + b.Length + c.Length) "length"
                Expect.equal (readInPieces all 3) (Array.concat [ a.ToArray(); b.ToArray(); c.ToArray() ]) "bytes"
            }

            test "Negative lengths are refused" {
                Expect.throwsT<ArgumentOutOfRangeException>
                    (fun () -> MessageContent.Generated(-1L, 0) |> ignore)
                    "negative"
            }
        ]
