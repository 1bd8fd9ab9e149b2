/// #8's mechanisms through the server machine (scripted client lines, via ServerConnection): XOAUTH2
/// in both forms with its error challenge, OAUTHBEARER, SCRAM-*-PLUS after STLS and with implicit
/// TLS, Exchange's refusal of an initial response, the SASL faults, the presets' CAPA lines, and
/// transcripts free of tokens and SASL payloads.
module Pop3Functional.Simulator.Tests.SaslSessionTests

open System
open System.Text
open Expecto
open Pop3Functional.Simulator
open Pop3Functional.Simulator.Tests
open Pop3Functional.Simulator.Tests.ServerConversation

let private clock = DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero)

let private options (personality: Personality) =
    (ServerOptions.Create personality).WithClock(Func<_>(fun () -> clock))

let private binding = Array.init 32 (fun i -> byte (i * 11))

let private mailboxes () =
    let boxes = Mailboxes()
    let alice = boxes.Mailbox("alice", "secret").AddOAuthToken("ya29.alice-token")
    alice.Add("Subject: hi\n\nhello\n") |> ignore
    boxes.Mailbox("bob", "hunter2") |> ignore
    boxes

let private b64 (s: string) =
    Convert.ToBase64String(Encoding.UTF8.GetBytes s)

let private unb64 (line: string) =
    Encoding.UTF8.GetString(Convert.FromBase64String(line.Substring(2).TrimEnd()))

let private xoauth2 user token =
    b64 $"user={user}\001auth=Bearer {token}\001\001"

let private oauthBearer user token =
    b64 $"n,a={user},\001host=pop.example.org\001port=995\001auth=Bearer {token}\001\001"

let private started (p: Personality) =
    let c = Conversation(options p, mailboxes ())
    c.Drain() |> ignore
    c

/// A SCRAM login over the conversation's lines; the server's answer to client-final-message and
/// the server-final-message a correct server sends.
let private scramLogin (c: Conversation) (mechanism: string) (gs2: string) (cbind: byte[]) (password: string) =
    let bare = "n=alice,r=ClientNonce777"
    let serverFirst = c.Say($"AUTH {mechanism} " + b64 (gs2 + bare))
    Expect.stringStarts serverFirst "+ " $"server-first-message: {serverFirst}"

    let final, expected =
        ScramClient.clientFinal mechanism password gs2 cbind bare (unb64 serverFirst)

    c.Say(b64 final), expected

let private capaSasl (capa: string) =
    capa.Split("\r\n") |> Array.tryFind (fun l -> l.StartsWith "SASL ")

[<Tests>]
let tests =
    testList
        "SASL sessions of #8"
        [
            testList
                "XOAUTH2"
                [
                    test "initial response: +OK and the maildrop" {
                        let c = started Personalities.gmail

                        Expect.stringStarts
                            (c.Say("AUTH XOAUTH2 " + xoauth2 "alice" "ya29.alice-token"))
                            "+OK Logged in"
                            "logged in"
                    }

                    test "Exchange: the two-line form with a bare + works" {
                        let c = started Personalities.exchange
                        Expect.equal (c.Say "AUTH XOAUTH2") "+\r\n" "bare + (Microsoft's documented form)"
                        Expect.stringStarts (c.Say(xoauth2 "alice" "ya29.alice-token")) "+OK" "logged in"
                    }

                    test "Exchange: an initial response gets -ERR Protocol error and the connection closes" {
                        let c = started Personalities.exchange

                        Expect.equal
                            (c.Say("AUTH XOAUTH2 " + xoauth2 "alice" "ya29.alice-token"))
                            "-ERR Protocol error. Connection is closed. 10\r\n"
                            "refused"

                        Expect.isTrue c.Closed "closed"
                        // PLAIN's initial response stays accepted.
                        let c = started Personalities.exchange
                        Expect.stringStarts (c.Say("AUTH PLAIN " + b64 "\000alice\000secret")) "+OK" "PLAIN with IR"
                    }

                    for p in [ Personalities.gmail; Personalities.simulator ] do
                        test
                            $"a bad token: the base64 JSON error challenge, then -ERR [AUTH] after the empty line ({p.Name})" {
                            let c = started p
                            let challenge = c.Say("AUTH XOAUTH2 " + xoauth2 "alice" "ya29.wrong")
                            Expect.equal challenge ("+ " + b64 SaslServer.XOAuth2ErrorJson + "\r\n") "error challenge"
                            Expect.equal (c.Say "") "-ERR [AUTH] Authentication failed.\r\n" "-ERR after the empty line"
                            Expect.equal (c.Say "USER alice") "+OK\r\n" "a command again"
                        }

                    test "the error challenge answered with anything else, or cancelled, is -ERR too" {
                        let c = started Personalities.gmail
                        c.Say("AUTH XOAUTH2 " + xoauth2 "alice" "nope") |> ignore
                        Expect.stringStarts (c.Say(b64 "again")) "-ERR [AUTH]" "a non-empty answer"
                        c.Say("AUTH XOAUTH2 " + xoauth2 "alice" "nope") |> ignore
                        Expect.equal (c.Say "*") "-ERR Authentication cancelled.\r\n" "cancelled (RFC 5034 §4)"

                        Expect.stringStarts
                            (c.Say("AUTH XOAUTH2 " + xoauth2 "alice" "ya29.alice-token"))
                            "+OK"
                            "then a good token"
                    }

                    test "a revoked token gets the error challenge; another valid token still works" {
                        let boxes = mailboxes ()
                        let alice = boxes.Mailbox "alice"

                        alice.AddOAuthToken("ya29.second").RevokeOAuthToken("ya29.alice-token")
                        |> ignore

                        let c = Conversation(options Personalities.gmail, boxes)
                        c.Drain() |> ignore
                        Expect.stringStarts (c.Say("AUTH XOAUTH2 " + xoauth2 "alice" "ya29.alice-token")) "+ " "revoked"
                        c.Say "" |> ignore

                        Expect.stringStarts
                            (c.Say("AUTH XOAUTH2 " + xoauth2 "alice" "ya29.second"))
                            "+OK"
                            "the other token"
                    }

                    test "an unknown account cannot be given a token" {
                        Expect.throwsT<ArgumentException>
                            (fun () -> (Mailboxes()).AddOAuthToken("nobody", "t"))
                            "unknown account"
                    }
                ]

            testList
                "OAUTHBEARER"
                [
                    test "initial response and two-line form log in; a bad token is answered %x01 and fails" {
                        let c = started Personalities.gmail

                        Expect.stringStarts
                            (c.Say("AUTH OAUTHBEARER " + oauthBearer "alice" "ya29.alice-token"))
                            "+OK"
                            "IR"

                        let c = started Personalities.simulator
                        Expect.equal (c.Say "AUTH OAUTHBEARER") "+ \r\n" "empty challenge"
                        Expect.stringStarts (c.Say(oauthBearer "alice" "ya29.alice-token")) "+OK" "two-line"
                        let c = started Personalities.gmail
                        let challenge = c.Say("AUTH OAUTHBEARER " + oauthBearer "alice" "bad")
                        Expect.equal (unb64 challenge) SaslServer.OAuthBearerErrorJson "error JSON"
                        Expect.equal (c.Say "AQ==") "-ERR [AUTH] Authentication failed.\r\n" "%x01 then -ERR"
                    }

                    test "bearer mechanisms count as plaintext: hidden and refused before TLS when required" {
                        let o =
                            { options Personalities.simulator with
                                RequireTlsForPlaintextAuth = true
                            }

                        let c = Conversation(o, mailboxes (), stls = true)
                        c.Drain() |> ignore
                        let sasl = capaSasl (c.Say "CAPA")

                        Expect.equal
                            sasl
                            (Some "SASL CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256")
                            "no PLAIN, LOGIN, XOAUTH2, OAUTHBEARER"

                        Expect.stringStarts
                            (c.Say("AUTH XOAUTH2 " + xoauth2 "alice" "ya29.alice-token"))
                            "-ERR [AUTH] Plaintext"
                            "refused"

                        c.StartTls binding

                        Expect.stringStarts
                            (c.Say("AUTH OAUTHBEARER " + oauthBearer "alice" "ya29.alice-token"))
                            "+OK"
                            "over TLS"
                    }
                ]

            testList
                "SCRAM-*-PLUS"
                [
                    test "offered after STLS with binding data, not before; a -PLUS login binds to it" {
                        let c = Conversation(options Personalities.simulator, mailboxes (), stls = true)
                        c.Drain() |> ignore
                        Expect.isFalse ((c.Say "CAPA").Contains "-PLUS") "no -PLUS before TLS"

                        Expect.equal
                            (c.Say("AUTH SCRAM-SHA-256-PLUS " + b64 "p=tls-server-end-point,,n=alice,r=x"))
                            "-ERR Unsupported authentication mechanism.\r\n"
                            "refused before TLS"

                        c.StartTls binding
                        Expect.stringContains (c.Say "CAPA") "SCRAM-SHA-1-PLUS SCRAM-SHA-256-PLUS" "-PLUS over TLS"

                        let reply, expected =
                            scramLogin c "SCRAM-SHA-256-PLUS" "p=tls-server-end-point,," binding "secret"

                        Expect.equal (unb64 reply) expected "server signature"
                        Expect.stringStarts (c.Say "") "+OK Logged in" "logged in"
                    }

                    test "implicit TLS: the binding data comes with the connection" {
                        let c =
                            Conversation(options Personalities.simulator, mailboxes (), implicitTls = binding)

                        c.Drain() |> ignore
                        Expect.stringContains (c.Say "CAPA") "SCRAM-SHA-1-PLUS" "-PLUS offered"

                        let reply, expected =
                            scramLogin c "SCRAM-SHA-1-PLUS" "p=tls-server-end-point,," binding "secret"

                        Expect.equal (unb64 reply) expected "server signature"
                        Expect.stringStarts (c.Say "") "+OK" "logged in"
                    }

                    test "a host that supplies no binding data offers no -PLUS" {
                        let c = Conversation(options Personalities.simulator, mailboxes (), stls = true)
                        c.Drain() |> ignore
                        c.StartTls null
                        Expect.isFalse ((c.Say "CAPA").Contains "-PLUS") "no -PLUS"
                    }

                    test "c= bound to other data fails; 'y' while -PLUS is offered is a downgrade; p=tls-unique fails" {
                        let c =
                            Conversation(options Personalities.cyrus, mailboxes (), implicitTls = binding)

                        c.Drain() |> ignore
                        let wrong = Array.init 32 byte

                        let reply, _ =
                            scramLogin c "SCRAM-SHA-256-PLUS" "p=tls-server-end-point,," wrong "secret"

                        Expect.stringStarts reply "-ERR [AUTH]" "other binding data"
                        Expect.stringContains reply "channel binding" "says why"

                        let downgrade = c.Say("AUTH SCRAM-SHA-256 " + b64 "y,,n=alice,r=abc")
                        Expect.stringStarts downgrade "-ERR [AUTH]" "y refused"
                        Expect.stringContains downgrade "downgrade" "says why"

                        Expect.stringStarts
                            (c.Say("AUTH SCRAM-SHA-1-PLUS " + b64 "p=tls-unique,,n=alice,r=abc"))
                            "-ERR [AUTH]"
                            "tls-unique"

                        let reply, _ = scramLogin c "SCRAM-SHA-1" "n,," [||] "secret"
                        Expect.stringStarts reply "+ " "plain SCRAM still works"
                    }
                ]

            testList
                "faults"
                [
                    test "ScramBadServerSignature: a well-formed v= that is not the server signature" {
                        let c =
                            Conversation(
                                (options Personalities.dovecot).WithFaults(Fault.ScramBadServerSignature),
                                mailboxes ()
                            )

                        c.Drain() |> ignore
                        let reply, expected = scramLogin c "SCRAM-SHA-256" "n,," [||] "secret"
                        let v = unb64 reply
                        Expect.stringStarts v "v=" "v="
                        Expect.notEqual v expected "falsified"

                        Expect.equal
                            (Convert.FromBase64String(v.Substring 2)).Length
                            (Convert.FromBase64String(expected.Substring 2)).Length
                            "same length"

                        Expect.stringStarts (c.Say "") "+OK" "the server itself goes on"
                    }

                    test "ScramMissingServerSignature: +OK right after the proof, no v=" {
                        let c =
                            Conversation(
                                (options Personalities.dovecot).WithFaults(Fault.ScramMissingServerSignature),
                                mailboxes ()
                            )

                        c.Drain() |> ignore
                        let reply, _ = scramLogin c "SCRAM-SHA-1" "n,," [||] "secret"
                        Expect.stringStarts reply "+OK Logged in" "+OK without server-final-message"
                        // A wrong proof is still refused.
                        let c =
                            Conversation(
                                (options Personalities.dovecot).WithFaults(Fault.ScramMissingServerSignature),
                                mailboxes ()
                            )

                        c.Drain() |> ignore
                        let reply, _ = scramLogin c "SCRAM-SHA-1" "n,," [||] "wrong"
                        Expect.stringStarts reply "-ERR [AUTH]" "wrong proof"
                    }

                    test "SaslEndlessChallenges: a challenge for every response, until the client cancels" {
                        let c =
                            Conversation(
                                (options Personalities.simulator).WithFaults(Fault.SaslEndlessChallenges),
                                mailboxes ()
                            )

                        c.Drain() |> ignore
                        let first = c.Say("AUTH PLAIN " + b64 "\000alice\000secret")
                        Expect.stringStarts first "+ " "a challenge even for a complete PLAIN message"

                        for round in 2..40 do
                            let line = c.Say(b64 "anything")
                            Expect.stringStarts line "+ " $"round {round}"
                            Expect.stringContains (unb64 line) $"round {round}" "numbered"

                        Expect.equal (c.Say "*") "-ERR Authentication cancelled.\r\n" "cancel ends it"
                    }

                    test "SaslHugeChallenge: a base64 challenge of the given size" {
                        let c =
                            Conversation(
                                (options Personalities.simulator).WithFaults(Fault.SaslHugeChallenge 70_000),
                                mailboxes ()
                            )

                        c.Drain() |> ignore
                        let line = c.Say "AUTH LOGIN"
                        Expect.equal line.Length (2 + 70_000 + 2) "+ , 70,000 octets, CRLF"
                        Expect.stringStarts line "+ AAAA" "base64"
                    }

                    test "the new named plans parse to their faults" {
                        for name, fault in
                            [
                                "sasl-huge-challenge", Fault.SaslHugeChallenge 70_000
                                "sasl-endless", Fault.SaslEndlessChallenges
                                "scram-bad-signature", Fault.ScramBadServerSignature
                                "scram-no-signature", Fault.ScramMissingServerSignature
                            ] do
                            Expect.contains Faults.Names name "listed"
                            Expect.equal (Faults.TryParse name) (true, FaultPlan.Of fault) name

                        Expect.equal Faults.SaslEndlessChallenges Fault.SaslEndlessChallenges "factory"
                        Expect.equal (Faults.SaslHugeChallenge 8) (Fault.SaslHugeChallenge 8) "factory"
                    }
                ]

            testList
                "CAPA of the presets"
                [
                    test "gmail: SASL PLAIN XOAUTH2 OAUTHBEARER before login, none after" {
                        let c = started Personalities.gmail
                        Expect.equal (capaSasl (c.Say "CAPA")) (Some "SASL PLAIN XOAUTH2 OAUTHBEARER") "before"
                        c.Say("AUTH XOAUTH2 " + xoauth2 "alice" "ya29.alice-token") |> ignore
                        Expect.equal (capaSasl (c.Say "CAPA")) None "after login"
                    }

                    test "exchange: SASL PLAIN XOAUTH2" {
                        Expect.equal
                            (capaSasl ((started Personalities.exchange).Say "CAPA"))
                            (Some "SASL PLAIN XOAUTH2")
                            "SASL"
                    }

                    test "cyrus: -PLUS only over TLS" {
                        let c = Conversation(options Personalities.cyrus, mailboxes (), stls = true)
                        c.Drain() |> ignore

                        Expect.equal
                            (capaSasl (c.Say "CAPA"))
                            (Some "SASL SCRAM-SHA-1 SCRAM-SHA-256 PLAIN")
                            "before STLS"

                        c.StartTls binding

                        Expect.equal
                            (capaSasl (c.Say "CAPA"))
                            (Some "SASL SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-256-PLUS PLAIN")
                            "after STLS"
                    }

                    test "simulator: every mechanism over TLS" {
                        let c =
                            Conversation(options Personalities.simulator, mailboxes (), implicitTls = binding)

                        c.Drain() |> ignore

                        Expect.equal
                            (capaSasl (c.Say "CAPA"))
                            (Some("SASL " + String.Join(' ', SaslServer.mechanisms)))
                            "all nine"
                    }
                ]

            testList
                "transcripts"
                [
                    test "no token, password or SASL payload reaches the transcript, however the lines are spaced" {
                        let c = started Personalities.simulator
                        let secrets = ResizeArray<string>()

                        let say (line: string) (secret: string list) =
                            secrets.AddRange secret
                            c.Say line |> ignore

                        let ir = xoauth2 "alice" "ya29.wrong-token"
                        say $"AUTH XOAUTH2 {ir}" [ ir ]
                        say "" []
                        say $"auth  xoauth2\t{ir} " [ ir ]
                        say "" []
                        let bearer = oauthBearer "alice" "ya29.bearer-secret"
                        say "AUTH OAUTHBEARER" []
                        say bearer [ bearer ]
                        say "AQ==" []
                        say "AUTH XOAUTH2" []
                        let good = xoauth2 "alice" "ya29.alice-token"
                        say good [ good ]
                        let text = c.Transcript.ToString()

                        for secret in
                            Seq.append secrets [ "ya29.wrong-token"; "ya29.bearer-secret"; "ya29.alice-token" ] do
                            Expect.isFalse (text.Contains secret) $"{secret} in:\n{text}"

                        Expect.stringContains text "AUTH XOAUTH2 [redacted]" "the AUTH line, redacted"
                    }

                    test "a SASL response the server did not wait for is redacted too" {
                        // AUTH refused (not offered), then the client sends its two-line payload anyway.
                        let p = Personalities.simulator.WithSaslMechanisms("PLAIN")
                        let c = started p
                        c.Say "AUTH XOAUTH2" |> ignore
                        let payload = xoauth2 "alice" "ya29.alice-token"
                        Expect.stringStarts (c.Say payload) "-ERR" "not a command"
                        c.Say "\tFOO" |> ignore
                        let text = c.Transcript.ToString()
                        Expect.isFalse (text.Contains payload) text
                        Expect.stringContains text "[unrecognised line redacted]" "marked"
                        Expect.stringContains text "FOO" "a short unknown command stays visible"
                    }

                    test "SCRAM-PLUS responses are redacted" {
                        let c =
                            Conversation(options Personalities.cyrus, mailboxes (), implicitTls = binding)

                        c.Drain() |> ignore
                        let first = b64 "p=tls-server-end-point,,n=alice,r=ClientNonce777"

                        scramLogin c "SCRAM-SHA-256-PLUS" "p=tls-server-end-point,," binding "secret"
                        |> ignore

                        let text = c.Transcript.ToString()
                        Expect.isFalse (text.Contains first) "client-first"
                        Expect.isFalse (text.Contains "p=") "client-final"
                    }
                ]
        ]
