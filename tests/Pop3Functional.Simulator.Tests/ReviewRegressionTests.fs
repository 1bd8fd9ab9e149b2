/// Regressions found by the review of the simulator (each failed before its fix).
module Pop3Functional.Simulator.Tests.ReviewRegressionTests

open System
open System.IO
open System.Security.Cryptography
open System.Text
open Expecto
open Pop3Functional.Simulator

let private clock = DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero)

let private options (p: Personality) =
    (ServerOptions.Create p).WithClock(Func<_>(fun () -> clock))

/// Everything the server writes after each input, as text, and the delays it asked for.
type private Talk(options: ServerOptions, boxes: Mailboxes, transcript: Transcript) =
    let conn = new ServerConnection(options, boxes, transcript, 1, false, false)
    let buffer = Array.zeroCreate<byte> 65536
    member val Delays = 0 with get, set
    member _.Connection = conn

    member this.Drain() =
        let text = StringBuilder()
        let mutable go = true

        while go do
            let a = conn.Next(Span buffer)

            match a.Kind with
            | ServerActionKind.Write -> text.Append(Encoding.Latin1.GetString(buffer, 0, a.Count)) |> ignore
            | ServerActionKind.Delay -> this.Delays <- this.Delays + 1
            | _ -> go <- false

        text.ToString()

    member this.Say(line: string) =
        conn.Feed(ReadOnlyMemory(Encoding.Latin1.GetBytes(line + "\r\n")))
        this.Drain()

let private b64 (bytes: byte[]) = Convert.ToBase64String bytes
let private utf8 (s: string) = Encoding.UTF8.GetBytes s

let private attributes (message: string) =
    message.Split ',' |> Array.map (fun p -> p[0], p[2..]) |> Map.ofArray

/// A SCRAM-SHA-256 client (RFC 5802 §3, RFC 7677) through the server's own lines.
let private scramLogin (talk: Talk) (initial: bool) (password: string) =
    let clientFirstBare = "n=alice,r=clientnonce0123"
    let clientFirst = "n,," + clientFirstBare

    let challenge =
        if initial then
            talk.Say("AUTH SCRAM-SHA-256 " + b64 (utf8 clientFirst))
        else
            let empty = talk.Say "AUTH SCRAM-SHA-256"
            Expect.equal empty "+ \r\n" "an empty first challenge"
            talk.Say(b64 (utf8 clientFirst))

    Expect.stringStarts challenge "+ " $"server-first: {challenge}"

    let serverFirst =
        Encoding.UTF8.GetString(Convert.FromBase64String(challenge.Substring(2).TrimEnd()))

    let a = attributes serverFirst

    let salted =
        Rfc2898DeriveBytes.Pbkdf2(
            utf8 password,
            Convert.FromBase64String a['s'],
            int a['i'],
            HashAlgorithmName.SHA256,
            32
        )

    let clientKey = HMACSHA256.HashData(salted, utf8 "Client Key")
    let storedKey = SHA256.HashData clientKey
    let withoutProof = $"c=biws,r={a['r']}"
    let authMessage = utf8 (clientFirstBare + "," + serverFirst + "," + withoutProof)
    let proof = Array.map2 (^^^) clientKey (HMACSHA256.HashData(storedKey, authMessage))
    let final = talk.Say(b64 (utf8 (withoutProof + ",p=" + b64 proof)))
    final, authMessage, salted

let private mailbox () =
    let boxes = Mailboxes()
    let box = boxes.Mailbox("alice", "secret")
    box.Add("Subject: one\n\nhello\nsecond line\n") |> ignore
    box.Add("Subject: two\n\nbody\n") |> ignore
    boxes

let private loggedIn (o: ServerOptions) (boxes: Mailboxes) =
    let t = Talk(o, boxes, Transcript())
    t.Drain() |> ignore
    t.Say "USER alice" |> ignore
    t.Say "PASS secret" |> ignore
    t

[<Tests>]
let tests =
    testList
        "Review regressions"
        [
            for initial in [ true; false ] do
                test $"SCRAM-SHA-256 logs in through the server machine (initial response: {initial})" {
                    let t = Talk(options Personalities.simulator, mailbox (), Transcript())
                    t.Drain() |> ignore
                    let final, authMessage, salted = scramLogin t initial "secret"
                    let serverKey = HMACSHA256.HashData(salted, utf8 "Server Key")
                    let expected = "v=" + b64 (HMACSHA256.HashData(serverKey, authMessage))
                    Expect.equal final ("+ " + b64 (utf8 expected) + "\r\n") "the server signature"
                    Expect.stringStarts (t.Say "") "+OK Logged in" "logged in after the empty response"
                }

            test "SCRAM with a wrong password fails" {
                let t = Talk(options Personalities.simulator, mailbox (), Transcript())
                t.Drain() |> ignore
                let final, _, _ = scramLogin t true "wrong"
                Expect.stringStarts final "-ERR [AUTH]" "refused"
            }

            test "secrets never reach the transcript, however the line is spaced" {
                let transcript = Transcript()
                let t = Talk(options Personalities.simulator, mailbox (), transcript)
                t.Drain() |> ignore
                t.Say("AUTH PLAIN  " + b64 (utf8 "\000alice\000wrong")) |> ignore
                t.Say("AUTH PLAIN " + b64 (utf8 "\000alice\000wrong") + " ") |> ignore
                t.Say "PASS\tsecret2" |> ignore
                t.Say "pass  secret3" |> ignore
                t.Say "APOP alice 0123456789abcdef0123456789abcdef" |> ignore
                let text = transcript.ToString()

                for secret in [ b64 (utf8 "\000alice\000wrong"); "secret2"; "secret3"; "0123456789abcdef" ] do
                    Expect.isFalse (text.Contains secret) $"{secret} in:\n{text}"
            }

            test "an -ERR to a SASL response line ends the exchange (RFC 5034 §4)" {
                let o =
                    { options Personalities.simulator with
                        MaxSaslResponseOctets = 64
                    }

                let t = Talk(o, mailbox (), Transcript())
                t.Drain() |> ignore
                Expect.equal (t.Say "AUTH PLAIN") "+ \r\n" "challenge"
                Expect.equal (t.Say(String('A', 100))) "-ERR Line too long.\r\n" "too long"
                Expect.equal (t.Say "USER alice") "+OK\r\n" "a command again, not base64"
                let t = Talk(o, mailbox (), Transcript())
                t.Drain() |> ignore
                t.Say "AUTH LOGIN" |> ignore
                Expect.equal (t.Say "ab\000cd") "-ERR NUL in command line.\r\n" "NUL"
                Expect.equal (t.Say "CAPA") (t.Say "CAPA") "CAPA is a command again"
            }

            test "BodyShorter cuts back to a line end: shorter, whole lines, no bare CR" {
                let boxes = Mailboxes()
                boxes.Mailbox("alice", "secret").Add("Subject: a\n\nhello\nworld\n") |> ignore

                let o =
                    (options Personalities.simulator)
                        .WithFaults(FaultPlan.Of(Fault.BodyShorter(FaultTrigger.Verb "RETR", 1)))

                let t = loggedIn o boxes
                let retr = t.Say "RETR 1"
                // The status line keeps LIST's size (28); the body loses its whole last line.
                Expect.equal
                    retr
                    "+OK 28 octets follow.\r\nSubject: a\r\n\r\nhello\r\n.\r\n"
                    "cut at the previous line end"
            }

            test "BodyLonger adds well-formed lines of exactly the asked length, whatever it is" {
                for extra in [ 1; 2; 3; 78; 79; 80; 81; 157; 158; 1000 ] do
                    let boxes = Mailboxes()
                    boxes.Mailbox("alice", "secret").Add("Subject: a\n\nhello\n") |> ignore

                    let o =
                        (options Personalities.simulator)
                            .WithFaults(FaultPlan.Of(Fault.BodyLonger(FaultTrigger.Verb "RETR", extra)))

                    let t = loggedIn o boxes
                    let retr = t.Say "RETR 1"
                    let body = retr.Substring(retr.IndexOf "\r\n" + 2)
                    let body = body.Substring(0, body.Length - 3)
                    Expect.equal body.Length ("Subject: a\r\n\r\nhello\r\n".Length + max 2 extra) $"{extra}: length"
                    let lines = body.Split "\r\n"

                    Expect.isTrue
                        (lines |> Array.forall (fun l -> not (l.Contains '\n' || l.Contains '\r')))
                        $"{extra}: CRLF only"

                    Expect.equal lines[lines.Length - 1] "" $"{extra}: ends with CRLF"
            }

            test "a stream inside a concatenation (Courier's rewrite) is opened once per serving" {
                let boxes = Mailboxes()

                let bytes =
                    Encoding.UTF8.GetBytes("Subject: Grüße\r\n\r\n" + String.replicate 20000 "line of text\r\n")

                let mutable opened = 0

                let content =
                    MessageContent.OfStream(
                        Func<Stream>(fun () ->
                            opened <- opened + 1
                            new MemoryStream(bytes, false) :> Stream),
                        int64 bytes.Length
                    )

                boxes.Mailbox("alice", "secret").Add(content) |> ignore
                let openedAtDelivery = opened
                let t = loggedIn (options Personalities.courier) boxes
                let retr = t.Say "RETR 1"
                Expect.stringContains retr "message/global" "wrapped"
                Expect.equal (opened - openedAtDelivery) 1 "one stream for the whole body"
            }

            test "the machine never reads message content: the 8-bit header is found at delivery" {
                let boxes = Mailboxes()
                let stored = boxes.Mailbox("alice", "secret").Add("Subject: Grüße\n\nx\n")
                Expect.isTrue stored.EightBitHeader "8-bit header"
                let plain = boxes.Mailbox("alice").Add("Subject: plain\n\nGrüße\n")
                Expect.isFalse plain.EightBitHeader "8-bit body only"
            }

            test "Latency pauses once per reply, RETR included" {
                let o =
                    (options Personalities.simulator)
                        .WithFaults(FaultPlan.Of(Fault.Latency(TimeSpan.FromMilliseconds 1.0)))

                let t = loggedIn o (mailbox ())
                t.Delays <- 0
                t.Say "RETR 1" |> ignore
                Expect.equal t.Delays 1 "one pause"
            }

            test "while the maildrop opens, what is held is bounded" {
                let settings =
                    {
                        Personality = Personalities.simulator
                        Faults = FaultPlan.None
                        Hostname = "h"
                        TlsActive = false
                        StlsAvailable = false
                        Seed = 1UL
                        StartTime = clock
                        RequireTlsForPlaintextAuth = false
                        MaxCommandOctets = 255
                        MaxSaslResponseOctets = 65536
                        ScramIterations = 4096
                        LookupPassword = fun _ -> Some "secret"
                        LookupTokens = fun _ -> []
                        ChannelBinding = None
                    }

                let s, _ = ServerMachine.create settings

                let s, _ =
                    ServerMachine.step s (ServerInput.Received(ReadOnlyMemory(utf8 "USER alice\r\nPASS secret\r\n")))

                Expect.isTrue s.Phase.IsOpeningMaildrop "opening"
                let mutable s = s

                for _ in 1..20 do
                    let next, _ =
                        ServerMachine.step s (ServerInput.Received(ReadOnlyMemory(Array.create 1_000_000 65uy)))

                    s <- next

                Expect.isLessThanOrEqual s.Pending.Length (2 * ServerMachine.MaxHeldOctets) "bounded"
            }

            test "LOGIN-DELAY never asks to wait longer than the delay, even if the clock went back" {
                let policy =
                    { OpenPolicy.Default with
                        LoginDelay = TimeSpan.FromSeconds 10.0
                    }

                let s = MailStore.empty |> MailStore.addUser "a" "p"
                let t0 = DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)

                match s |> MailStore.tryOpen policy t0 "a" with
                | Ok(s, _) ->
                    match
                        s
                        |> MailStore.release "a"
                        |> MailStore.tryOpen policy (t0.AddSeconds -100.0) "a"
                    with
                    | Error(OpenRefusal.LoginDelay remaining) ->
                        Expect.equal remaining (TimeSpan.FromSeconds 10.0) "clamped"
                    | other -> failtestf "%A" other
                | Error e -> failtestf "%A" e
            }
        ]
