/// Known answers for the server machine: the exact bytes it sends for each command (RFC 1939,
/// RFC 2449, RFC 2595, RFC 5034, RFC 6856), driven through ServerConnection.
module Pop3Functional.Simulator.Tests.ServerMachineTests

open System
open System.Security.Cryptography
open System.Text
open Expecto
open FsCheck
open Pop3Functional.Simulator
open Pop3Functional.Simulator.Tests.ServerConversation

let private clock = DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero)

let private options (personality: Personality) =
    (ServerOptions.Create personality).WithClock(Func<_>(fun () -> clock))

let private mailbox () =
    let boxes = Mailboxes()
    let box = boxes.Mailbox("alice", "secret")
    box.Add("Subject: one\n\nline 1\n.dot\n.\nline 4\n", "uid-1") |> ignore
    box.Add("Subject: two\n\nsecond\n", "uid-2") |> ignore
    boxes

let private loggedIn (personality: Personality) =
    let boxes = mailbox ()
    let c = Conversation(options personality, boxes)
    c.Drain() |> ignore
    c.Say "USER alice" |> ignore
    c.Say "PASS secret" |> ignore
    c, boxes

let private size1 = "Subject: one\r\n\r\nline 1\r\n.dot\r\n.\r\nline 4\r\n".Length
let private size2 = "Subject: two\r\n\r\nsecond\r\n".Length

let private b64 (s: string) =
    Convert.ToBase64String(Encoding.UTF8.GetBytes s)

[<Tests>]
let tests =
    testList
        "ServerMachine"
        [
            test "the greeting carries an RFC 1939 §7 timestamp, the same for the same seed and clock" {
                let greeting () =
                    Conversation(options Personalities.simulator, mailbox ()).Drain()

                let g = greeting ()
                Expect.stringStarts g "+OK Pop3Functional.Simulator ready <" "greeting"
                Expect.stringEnds g $".{clock.ToUnixTimeSeconds()}@simulator.invalid>\r\n" "timestamp"
                Expect.equal (greeting ()) g "deterministic"
            }

            test "CAPA lists STLS only when the host can do TLS, and SASL with the mechanisms" {
                let plain = Conversation(options Personalities.simulator, mailbox ())
                plain.Drain() |> ignore
                let withoutTls = plain.Say "CAPA"
                Expect.isFalse (withoutTls.Contains "STLS") "no STLS without a certificate"

                Expect.stringContains
                    withoutTls
                    "\r\nSASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256 XOAUTH2 OAUTHBEARER\r\n"
                    "SASL line (no -PLUS without TLS)"

                Expect.stringStarts withoutTls "+OK Capability list follows\r\nTOP\r\nUSER\r\n" "start"
                Expect.stringEnds withoutTls "IMPLEMENTATION Pop3Functional.Simulator\r\n.\r\n" "end"
                let tls = Conversation(options Personalities.simulator, mailbox (), stls = true)
                tls.Drain() |> ignore
                Expect.stringContains (tls.Say "CAPA") "\r\nSTLS\r\n" "STLS offered"
            }

            test "USER/PASS logs in and reports the maildrop; a wrong password gets [AUTH]" {
                let c = Conversation(options Personalities.simulator, mailbox ())
                c.Drain() |> ignore
                Expect.equal (c.Say "USER alice") "+OK\r\n" "USER"
                Expect.equal (c.Say "PASS wrong") "-ERR [AUTH] Authentication failed.\r\n" "wrong"
                Expect.equal (c.Say "PASS secret") "-ERR No user name given (USER first).\r\n" "USER again first"
                c.Say "USER alice" |> ignore

                Expect.equal
                    (c.Say "PASS secret")
                    $"+OK Logged in; maildrop has 2 messages ({size1 + size2} octets).\r\n"
                    "logged in"
            }

            test "a password may contain spaces (the rest of the PASS line)" {
                let boxes = Mailboxes()
                boxes.AddUser("bob", "two words ")
                let c = Conversation(options Personalities.simulator, boxes)
                c.Drain() |> ignore
                c.Say "USER bob" |> ignore
                Expect.stringStarts (c.Say "PASS two words ") "+OK Logged in" "spaces kept"
            }

            test "APOP checks MD5(timestamp + password) (RFC 1939 §7)" {
                let c = Conversation(options Personalities.simulator, mailbox ())
                let greeting = c.Drain()
                let stamp = greeting.Substring(greeting.IndexOf '<').TrimEnd()

                let digest =
                    Convert.ToHexStringLower(MD5.HashData(Encoding.ASCII.GetBytes(stamp + "secret")))

                Expect.equal
                    (c.Say "APOP alice 0123456789abcdef0123456789abcdef")
                    "-ERR [AUTH] Authentication failed.\r\n"
                    "wrong digest"

                Expect.stringStarts
                    (c.Say $"APOP alice {digest.ToUpperInvariant()}")
                    "+OK Logged in"
                    "digest in any case"
            }

            test "STAT, LIST, UIDL, RETR with dot-stuffing, TOP (RFC 1939 §5, §7)" {
                let c, _ = loggedIn Personalities.simulator
                Expect.equal (c.Say "STAT") $"+OK 2 {size1 + size2}\r\n" "STAT"

                Expect.equal
                    (c.Say "LIST")
                    $"+OK 2 messages ({size1 + size2} octets)\r\n1 {size1}\r\n2 {size2}\r\n.\r\n"
                    "LIST"

                Expect.equal (c.Say "LIST 2") $"+OK 2 {size2}\r\n" "LIST 2"
                Expect.equal (c.Say "UIDL") "+OK Unique-ID listing follows\r\n1 uid-1\r\n2 uid-2\r\n.\r\n" "UIDL"
                Expect.equal (c.Say "UIDL 1") "+OK 1 uid-1\r\n" "UIDL 1"

                Expect.equal
                    (c.Say "RETR 1")
                    $"+OK {size1} octets follow.\r\nSubject: one\r\n\r\nline 1\r\n..dot\r\n..\r\nline 4\r\n.\r\n"
                    "RETR stuffs dots"

                Expect.equal (c.Say "TOP 1 0") "+OK Top of message follows.\r\nSubject: one\r\n\r\n.\r\n" "TOP 1 0"

                Expect.equal
                    (c.Say "TOP 1 2")
                    "+OK Top of message follows.\r\nSubject: one\r\n\r\nline 1\r\n..dot\r\n.\r\n"
                    "TOP 1 2"

                Expect.equal
                    (c.Say "TOP 2 99")
                    "+OK Top of message follows.\r\nSubject: two\r\n\r\nsecond\r\n.\r\n"
                    "TOP beyond the end"
            }

            test "message numbers: missing, zero, not a number, deleted (RFC 1939 §5)" {
                let c, _ = loggedIn Personalities.simulator
                Expect.equal (c.Say "RETR 3") "-ERR There's no message 3.\r\n" "too high"
                Expect.equal (c.Say "RETR 0") "-ERR There's no message 0.\r\n" "zero"
                Expect.equal (c.Say "RETR x") "-ERR Invalid message number.\r\n" "not a number"
                Expect.equal (c.Say "RETR 99999999999") "-ERR Invalid message number.\r\n" "too large"
                Expect.equal (c.Say "DELE 1") "+OK Message 1 deleted.\r\n" "DELE"
                Expect.equal (c.Say "DELE 1") "-ERR Message 1 is deleted.\r\n" "twice"
                Expect.equal (c.Say "RETR 1") "-ERR Message 1 is deleted.\r\n" "RETR deleted"
                Expect.equal (c.Say "STAT") $"+OK 1 {size2}\r\n" "STAT excludes deleted"

                Expect.equal
                    (c.Say "LIST")
                    $"+OK 1 messages ({size2} octets)\r\n2 {size2}\r\n.\r\n"
                    "LIST omits deleted"

                Expect.equal (c.Say "RSET") $"+OK Maildrop has 2 messages ({size1 + size2} octets).\r\n" "RSET"
                Expect.equal (c.Say "NOOP") "+OK\r\n" "NOOP"
            }

            test "QUIT commits deletions (UPDATE, RFC 1939 §6); leaving without QUIT commits nothing" {
                let c, boxes = loggedIn Personalities.simulator
                c.Say "DELE 2" |> ignore
                c.Connection.FeedEndOfStream()
                Expect.equal (boxes.Messages "alice" |> List.length) 2 "nothing removed without QUIT"
                let c, boxes = loggedIn Personalities.simulator
                c.Say "DELE 2" |> ignore
                Expect.equal (c.Say "QUIT") "+OK Pop3Functional.Simulator signing off.\r\n" "QUIT"
                Expect.isTrue c.Closed "closed"
                Expect.equal (boxes.Messages "alice" |> List.map _.Uid) [ "uid-1" ] "removed at QUIT"
            }

            test "a second session gets [IN-USE] while the first holds the maildrop (RFC 2449 §8.1.1)" {
                let first, boxes = loggedIn Personalities.simulator
                let second = Conversation(options Personalities.simulator, boxes, session = 2)
                second.Drain() |> ignore
                second.Say "USER alice" |> ignore

                Expect.equal
                    (second.Say "PASS secret")
                    "-ERR [IN-USE] Mailbox is locked by another session.\r\n"
                    "locked"

                first.Say "QUIT" |> ignore
                second.Say "USER alice" |> ignore
                Expect.stringStarts (second.Say "PASS secret") "+OK Logged in" "after QUIT"
            }

            test "commands in the wrong state, unknown commands, lowercase verbs" {
                let c = Conversation(options Personalities.simulator, mailbox ())
                c.Drain() |> ignore
                Expect.equal (c.Say "STAT") "-ERR Not logged in.\r\n" "STAT before login"
                Expect.equal (c.Say "XYZZY") "-ERR Unknown command.\r\n" "unknown"
                Expect.equal (c.Say "user alice") "+OK\r\n" "case-insensitive verbs"
                c.Say "pass secret" |> ignore
                Expect.equal (c.Say "USER alice") "-ERR Already logged in.\r\n" "USER after login"
                Expect.equal (c.Say "UTF8") "-ERR Already logged in.\r\n" "UTF8 after login (RFC 6856 §2)"
                Expect.equal (c.Say "LIST 1 2") "-ERR Invalid arguments.\r\n" "extra argument"
            }

            test "an over-long command gets -ERR and the next command works (RFC 2449 §4)" {
                let c = Conversation(options Personalities.simulator, mailbox ())
                c.Drain() |> ignore
                Expect.equal (c.Say("USER " + String('a', 300))) "-ERR Line too long.\r\n" "too long"
                Expect.equal (c.Raw(String('b', 400))) "-ERR Line too long.\r\n" "too long, no end yet"
                Expect.equal (c.Raw(String('b', 400) + "\r\nNOOP\r\n")) "-ERR Not logged in.\r\n" "rest dropped"
                Expect.equal (c.Say "USER alice") "+OK\r\n" "next command"
                Expect.equal (c.Raw "US\000ER x\r\n") "-ERR NUL in command line.\r\n" "NUL"
            }

            test "pipelined commands are answered in order, and a bare LF ends a command" {
                let c, _ = loggedIn Personalities.simulator
                let replies = c.Raw "NOOP\r\nSTAT\nLIST 2\r\nNOOP\r\n"
                Expect.equal replies $"+OK\r\n+OK 2 {size1 + size2}\r\n+OK 2 {size2}\r\n+OK\r\n" "in order"
            }

            test "STLS: +OK, then the handshake; pipelined plaintext after STLS is dropped (RFC 2595 §4)" {
                let c = Conversation(options Personalities.simulator, mailbox (), stls = true)
                c.Drain() |> ignore
                Expect.equal (c.Raw "STLS\r\nUSER mallory\r\n") "+OK Begin TLS negotiation now.\r\n" "STLS"
                Expect.isTrue c.StartTlsRequested "handshake asked"
                c.Connection.TlsEstablished null
                Expect.equal (c.Drain()) "" "the injected USER was dropped"
                Expect.isFalse ((c.Say "CAPA").Contains "STLS") "no STLS over TLS"
                Expect.equal (c.Say "STLS") "-ERR STLS not available.\r\n" "no second STLS"
            }

            test "RequireTlsForPlaintextAuth hides USER, PLAIN and LOGIN until TLS" {
                let o =
                    { options Personalities.simulator with
                        RequireTlsForPlaintextAuth = true
                    }

                let c = Conversation(o, mailbox (), stls = true)
                c.Drain() |> ignore
                let capa = c.Say "CAPA"
                Expect.isFalse (capa.Contains "\r\nUSER\r\n") "USER hidden"
                Expect.stringContains capa "SASL CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256\r\n" "plaintext mechanisms hidden"

                Expect.equal
                    (c.Say "USER alice")
                    "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections.\r\n"
                    "USER refused"

                c.Say "STLS" |> ignore
                c.Connection.TlsEstablished null
                Expect.equal (c.Say "USER alice") "+OK\r\n" "USER over TLS"
            }

            test "AUTH PLAIN with an initial response, with an empty challenge, and cancelled (RFC 5034 §4)" {
                let c = Conversation(options Personalities.simulator, mailbox ())
                c.Drain() |> ignore
                Expect.equal (c.Say "AUTH PLAIN") "+ \r\n" "empty challenge"
                Expect.equal (c.Say "*") "-ERR Authentication cancelled.\r\n" "cancel"
                Expect.equal (c.Say "AUTH PLAIN !!!") "-ERR Invalid base64 data in initial response.\r\n" "bad base64"
                Expect.equal (c.Say "AUTH NTLM") "-ERR Unsupported authentication mechanism.\r\n" "unknown mechanism"

                Expect.equal
                    (c.Say("AUTH PLAIN " + b64 "\000alice\000wrong"))
                    "-ERR [AUTH] Authentication failed.\r\n"
                    "wrong"

                Expect.stringStarts (c.Say("AUTH PLAIN " + b64 "\000alice\000secret")) "+OK Logged in" "logged in"
            }

            test "AUTH without a mechanism lists them; Exchange's empty challenge is a bare +" {
                let c = Conversation(options Personalities.simulator, mailbox ())
                c.Drain() |> ignore

                Expect.equal
                    (c.Say "AUTH")
                    "+OK Supported mechanisms follow\r\nPLAIN\r\nLOGIN\r\nCRAM-MD5\r\nSCRAM-SHA-1\r\nSCRAM-SHA-256\r\nXOAUTH2\r\nOAUTHBEARER\r\n.\r\n"
                    "list"

                let e = Conversation(options Personalities.exchange, mailbox ())
                e.Drain() |> ignore
                Expect.equal (e.Say "AUTH PLAIN") "+\r\n" "bare +"
                Expect.stringStarts (e.Say(b64 "\000alice\000secret")) "+OK" "logged in"
            }

            test "AUTH LOGIN and CRAM-MD5 exchanges" {
                let c = Conversation(options Personalities.simulator, mailbox ())
                c.Drain() |> ignore
                Expect.equal (c.Say "AUTH LOGIN") ("+ " + b64 "Username:" + "\r\n") "user prompt"
                Expect.equal (c.Say(b64 "alice")) ("+ " + b64 "Password:" + "\r\n") "password prompt"
                Expect.stringStarts (c.Say(b64 "secret")) "+OK Logged in" "logged in"
                let c = Conversation(options Personalities.simulator, mailbox (), session = 2)
                c.Drain() |> ignore
                let challengeLine = c.Say "AUTH CRAM-MD5"
                let challenge = Convert.FromBase64String(challengeLine.Substring(2).TrimEnd())
                Expect.stringEnds (Encoding.ASCII.GetString challenge) "@simulator.invalid>" "msg-id challenge"

                let digest =
                    Convert.ToHexStringLower(HMACMD5.HashData(Encoding.ASCII.GetBytes "secret", challenge))

                Expect.stringStarts (c.Say(b64 $"alice {digest}")) "+OK Logged in" "logged in"
            }

            test "UTF8 and LANG (RFC 6856)" {
                let c = Conversation(options Personalities.simulator, mailbox ())
                c.Drain() |> ignore
                Expect.equal (c.Say "UTF8") "+OK UTF8 enabled.\r\n" "UTF8"
                Expect.equal (c.Say "LANG") "+OK Language listing follows\r\nen English\r\nde Deutsch\r\n.\r\n" "list"
                Expect.equal (c.Say "LANG de") "+OK Language changed.\r\n" "known"
                Expect.equal (c.Say "LANG xx") "-ERR Unsupported language.\r\n" "unknown"
                let d = Conversation(options Personalities.dovecot, mailbox ())
                d.Drain() |> ignore
                Expect.equal (d.Say "LANG") "-ERR Unknown command.\r\n" "no LANG"
            }

            test "a server without the optional TOP and UIDL does not know them (RFC 1939 §7)" {
                let c, _ =
                    loggedIn
                        { Personalities.simulator with
                            Top = false
                            Uidl = false
                        }

                Expect.equal (c.Say "TOP 1 0") "-ERR Unknown command.\r\n" "TOP"
                Expect.equal (c.Say "UIDL") "-ERR Unknown command.\r\n" "UIDL"
                Expect.equal (c.Say "UIDL 1") "-ERR Unknown command.\r\n" "UIDL 1"
            }

            test "RPOP is refused unless the personality accepts it (RFC 1081)" {
                let c = Conversation(options Personalities.simulator, mailbox ())
                c.Drain() |> ignore
                c.Say "USER alice" |> ignore
                Expect.equal (c.Say "RPOP alice") "-ERR Unknown command.\r\n" "refused"

                let p =
                    { Personalities.simulator with
                        Rpop = true
                    }

                let r = Conversation(options p, mailbox ())
                r.Drain() |> ignore
                r.Say "USER alice" |> ignore
                Expect.stringStarts (r.Say "RPOP alice") "+OK Logged in" "trusted"
            }

            test "an RFC 1939-only server answers CAPA with -ERR; Cyrus says Message follows and a bare +OK to QUIT" {
                let c = Conversation(options Personalities.rfc1939, mailbox ())
                c.Drain() |> ignore
                Expect.stringStarts (c.Say "CAPA") "-ERR" "no CAPA"
                let c, _ = loggedIn Personalities.cyrus
                Expect.stringStarts (c.Say "RETR 2") "+OK Message follows.\r\nSubject: two" "Cyrus RETR"
                Expect.equal (c.Say "QUIT") "+OK\r\n" "Cyrus QUIT"
            }

            test "Courier wraps a message with raw 8-bit headers unless the client sent UTF8 (DESIGN §9)" {
                let boxes = Mailboxes()
                let box = boxes.Mailbox("alice", "secret")
                let original = "Subject: Grüße\n\nHallo\n"
                box.Add original |> ignore
                let size = Encoding.UTF8.GetByteCount(original.Replace("\n", "\r\n"))
                let c = Conversation(options Personalities.courier, boxes)
                c.Drain() |> ignore
                c.Say "USER alice" |> ignore
                c.Say "PASS secret" |> ignore
                Expect.equal (c.Say "LIST 1") $"+OK 1 {size}\r\n" "LIST is the stored size"
                let retr = c.Say "RETR 1"
                Expect.stringContains retr "multipart/mixed" "wrapped"
                Expect.stringContains retr "message/global" "original attached"
                Expect.isFalse (retr.StartsWith $"+OK {size} octets") "the status count matches neither size"
                c.Say "QUIT" |> ignore
                let u = Conversation(options Personalities.courier, boxes, session = 2)
                u.Drain() |> ignore
                u.Say "UTF8" |> ignore
                u.Say "USER alice" |> ignore
                u.Say "PASS secret" |> ignore
                let exact = u.Say "RETR 1"
                Expect.stringStarts exact $"+OK {size} octets follow.\r\nSubject: Gr" "exact with UTF8"
                Expect.isFalse (exact.Contains "multipart") "not wrapped"
            }

            test "a server fault can break the greeting itself (command 0)" {
                let o =
                    (options Personalities.simulator)
                        .WithFaults(
                            FaultPlan.Of(Fault.ErrorReply(FaultTrigger.NthCommand 0, Some "SYS/TEMP", "try later"))
                        )

                let c = Conversation(o, mailbox ())
                Expect.equal (c.Drain()) "-ERR [SYS/TEMP] try later\r\n" "greeting"
            }

            test "a 1 GiB message is served in constant memory" {
                let boxes = Mailboxes()
                let length = 1L <<< 30
                boxes.Mailbox("big", "pw").Add(MessageContent.Generated(length, 1)) |> ignore
                let c = Conversation(options Personalities.simulator, boxes)
                c.Drain() |> ignore
                c.Say "USER big" |> ignore
                c.Say "PASS pw" |> ignore
                c.Connection.Feed(ReadOnlyMemory(Encoding.ASCII.GetBytes "RETR 1\r\n"))
                let buffer = Array.zeroCreate<byte> 65536
                let before = GC.GetAllocatedBytesForCurrentThread()
                let mutable total = 0L
                let tail = Array.zeroCreate<byte> 5
                let mutable go = true

                while go do
                    let a = c.Connection.Next(Span buffer)

                    if a.Kind = ServerActionKind.Write then
                        total <- total + int64 a.Count
                        // The last five octets sent, without allocating.
                        let keep = min 5 a.Count
                        Array.Copy(tail, keep, tail, 0, 5 - keep)
                        Array.Copy(buffer, a.Count - keep, tail, 5 - keep, keep)
                    else
                        go <- false

                let allocated = GC.GetAllocatedBytesForCurrentThread() - before
                Expect.isGreaterThan total length "every octet (plus status and stuffing)"
                Expect.equal (Encoding.ASCII.GetString tail) "\r\n.\r\n" "terminated"
                Expect.isLessThan allocated (64L * 1024L * 1024L) $"allocated {allocated} octets"
            }

            testPropertyWithConfig
                { FsCheckConfig.defaultConfig with
                    maxTest = 300
                }
                "the server never throws on arbitrary bytes, in any state"
            <| fun (chunks: byte[] list) (login: bool) ->
                let c, _ =
                    if login then
                        loggedIn Personalities.simulator
                    else
                        let c = Conversation(options Personalities.simulator, mailbox ())
                        c.Drain() |> ignore
                        c, Mailboxes()

                for chunk in chunks do
                    c.Raw(Encoding.Latin1.GetString chunk) |> ignore

                c.Connection.FeedEndOfStream()
                c.Drain() |> ignore
                true
        ]
