/// XOAUTH2, OAUTHBEARER (RFC 7628) and SCRAM-*-PLUS (RFC 5802 §6) at the level of SaslServer: every
/// success and failure path, with the client side written here.
module Pop3Functional.Simulator.Tests.SaslMechanismTests

open System
open System.Text
open Expecto
open Pop3Functional.Simulator
open Pop3Functional.Simulator.Tests
open Pop3Functional.Simulator.Tests.SaslSteps

let private utf8 (s: string) = Encoding.UTF8.GetBytes s
let private text (b: byte[]) = Encoding.UTF8.GetString b

let private binding = Array.init 32 (fun i -> byte (255 - i))

/// alice (password "secret", tokens "ya29.alice-1" and "ya29.alice-2"), bob (no token); over TLS
/// with tls-server-end-point data, -PLUS advertised.
let private context =
    {
        LookupPassword =
            function
            | "alice" -> Some "secret"
            | "bob" -> Some "hunter2"
            | _ -> None
        LookupTokens =
            function
            | "alice" -> [ "ya29.alice-1"; "ya29.alice-2" ]
            | _ -> []
        Nonce = "ServerNonce0123456789"
        Hostname = "pop.example.org"
        ScramSalt = Array.init 16 byte
        ScramIterations = 4096
        ChannelBinding = Some binding
        ChannelBindingAdvertised = true
    }

let private xoauth2 (user: string) (token: string) =
    utf8 $"user={user}\001auth=Bearer {token}\001\001"

let private oauthBearer (gs2: string) (pairs: string) = utf8 (gs2 + "\001" + pairs + "\001")

/// Runs a SCRAM exchange with this gs2-header and channel-binding data; the step after
/// client-final-message (and the expected server-final-message).
let private scram ctx (mechanism: string) (gs2: string) (cbind: byte[]) (password: string) =
    let bare = "n=alice,r=ClientNonce42"

    let state, serverFirst =
        challenged (started ctx mechanism (Some(utf8 (gs2 + bare))))

    let final, expected =
        ScramClient.clientFinal mechanism password gs2 cbind bare (text serverFirst)

    SaslServer.respond ctx state (utf8 final), expected

[<Tests>]
let tests =
    testList
        "SASL mechanisms of #8"
        [
            testList
                "XOAUTH2"
                [
                    test "a valid token logs in, with an initial response and in the two-line form" {
                        started context "XOAUTH2" (Some(xoauth2 "alice" "ya29.alice-1"))
                        |> expectSucceeded "alice"

                        let state, challenge = challenged (started context "xoauth2" None)
                        Expect.equal challenge [||] "an empty challenge first (Microsoft's two-line form)"

                        SaslServer.respond context state (xoauth2 "alice" "ya29.alice-2")
                        |> expectSucceeded "alice"
                    }

                    test "the scheme is case-insensitive (RFC 7235 §2.1) and the token may end in =" {
                        started context "XOAUTH2" (Some(utf8 "user=alice\001auth=bearer ya29.alice-1\001\001"))
                        |> expectSucceeded "alice"

                        let ctx =
                            { context with
                                LookupTokens = fun _ -> [ "abc+/=="; "x" ]
                            }

                        started ctx "XOAUTH2" (Some(xoauth2 "alice" "abc+/=="))
                        |> expectSucceeded "alice"
                    }

                    test "a bad token, another user's token or an unknown user gets the JSON error challenge" {
                        for user, token in [ "alice", "ya29.wrong"; "bob", "ya29.alice-1"; "carol", "ya29.alice-1" ] do
                            let state, challenge =
                                challenged (started context "XOAUTH2" (Some(xoauth2 user token)))

                            Expect.equal (text challenge) SaslServer.XOAuth2ErrorJson "Gmail's error JSON"
                            Expect.stringContains (text challenge) "\"status\":\"400\"" "status"

                            Expect.equal
                                (expectFailed (SaslServer.respond context state [||]))
                                "authentication failed"
                                "-ERR after the empty answer"
                    }

                    test "an answer to the error challenge other than an empty line fails too, and says why" {
                        let state, _ = challenged (started context "XOAUTH2" (Some(xoauth2 "alice" "nope")))
                        let reason = expectFailed (SaslServer.respond context state (utf8 "retry"))
                        Expect.stringContains reason "must be empty" "reason"
                    }

                    test "a malformed message fails at once, without the error challenge" {
                        for message in
                            [
                                "user=alice\001auth=Bearer ya29.alice-1\001" // one ^A at the end
                                "user=alice\001auth=Bearer ya29.alice-1" // none
                                "auth=Bearer ya29.alice-1\001user=alice\001\001" // order
                                "user=alice\001auth=Bearer ya29.alice-1\001host=x\001\001" // extra pair
                                "user=\001auth=Bearer ya29.alice-1\001\001" // empty user
                                "user=alice\001auth=ya29.alice-1\001\001" // no scheme
                                "user=alice\001auth=Basic ya29.alice-1\001\001" // another scheme
                                "user=alice\001auth=Bearer \001\001" // no token
                                "user=alice\001auth=Bearer ya29 alice\001\001" // a space in the token
                                "user=alice\001auth=Bearer =abc\001\001" // = not at the end
                                ""
                            ] do
                            started context "XOAUTH2" (Some(utf8 message)) |> expectFailed |> ignore

                        started context "XOAUTH2" (Some [| 0xC3uy; 0x28uy |]) |> expectFailed |> ignore
                    }
                ]

            testList
                "OAUTHBEARER (RFC 7628)"
                [
                    test "a valid token logs in: a=, auth, host and port; initial response or an empty challenge first" {
                        let message =
                            oauthBearer "n,a=alice," "host=pop.example.org\001port=995\001auth=Bearer ya29.alice-1\001"

                        started context "OAUTHBEARER" (Some message) |> expectSucceeded "alice"
                        let state, challenge = challenged (started context "OAUTHBEARER" None)
                        Expect.equal challenge [||] "empty challenge"
                        SaslServer.respond context state message |> expectSucceeded "alice"
                    }

                    test "host and port are optional, unknown keys are ignored, 'y' is accepted (no -PLUS variant)" {
                        for gs2, pairs in
                            [
                                "n,a=alice,", "auth=Bearer ya29.alice-2\001"
                                "y,a=alice,", "auth=Bearer ya29.alice-2\001"
                                "n,a=alice,", "xtra=1\001auth=Bearer ya29.alice-2\001"
                            ] do
                            started context "OAUTHBEARER" (Some(oauthBearer gs2 pairs))
                            |> expectSucceeded "alice"
                    }

                    test "a bad token gets the JSON error challenge; %x01 then fails it (RFC 7628 §3.2.2)" {
                        let message = oauthBearer "n,a=alice," "auth=Bearer ya29.wrong\001"
                        let state, challenge = challenged (started context "OAUTHBEARER" (Some message))
                        Expect.equal (text challenge) SaslServer.OAuthBearerErrorJson "RFC 7628 error JSON"
                        Expect.stringContains (text challenge) "\"status\":\"invalid_token\"" "status"

                        Expect.equal
                            (expectFailed (SaslServer.respond context state [| 1uy |]))
                            "authentication failed"
                            "-ERR"

                        let state, _ = challenged (started context "OAUTHBEARER" (Some message))
                        let reason = expectFailed (SaslServer.respond context state [||])
                        Expect.stringContains reason "%x01" "an empty answer is not the dummy response"
                    }

                    test "channel binding (p=) is refused: OAUTHBEARER has none" {
                        let message =
                            oauthBearer "p=tls-server-end-point,a=alice," "auth=Bearer ya29.alice-1\001"

                        Expect.stringContains
                            (started context "OAUTHBEARER" (Some message) |> expectFailed)
                            "channel binding"
                            "reason"
                    }

                    test "a malformed message fails at once" {
                        for gs2, pairs in
                            [
                                "n,,", "auth=Bearer ya29.alice-1\001" // no a=: the simulator cannot find the account
                                "n,a=alice,", "host=x\001" // no auth
                                "n,a=alice,", "auth=Bearer ya29.alice-1\001auth=Bearer ya29.alice-1\001" // twice
                                "n,a=alice,", "port=99x\001auth=Bearer ya29.alice-1\001" // port
                                "n,a=alice,", "ho-st=x\001auth=Bearer ya29.alice-1\001" // key
                                "n,a=alice,", "noequals\001auth=Bearer ya29.alice-1\001" // pair
                                "n,a=alice,", "auth=Bearer ya29.alice-1\001host=a\000b\001" // control character
                                "n,a=alice,", "auth=ya29.alice-1\001" // no scheme
                                "x,a=alice,", "auth=Bearer ya29.alice-1\001" // flag
                                "n,b=alice,", "auth=Bearer ya29.alice-1\001" // authzid
                            ] do
                            started context "OAUTHBEARER" (Some(oauthBearer gs2 pairs))
                            |> expectFailed
                            |> ignore

                        for raw in [ "n,a=alice,auth=Bearer ya29.alice-1\001\001"; "n,a=alice"; "\001" ] do
                            started context "OAUTHBEARER" (Some(utf8 raw)) |> expectFailed |> ignore
                    }
                ]

            testList
                "SCRAM-*-PLUS (RFC 5802 §6, RFC 5929 §4)"
                [
                    for mechanism in [ "SCRAM-SHA-1-PLUS"; "SCRAM-SHA-256-PLUS" ] do
                        test $"{mechanism}: p=tls-server-end-point with the right binding data logs in" {
                            let step, expected =
                                scram context mechanism "p=tls-server-end-point,," binding "secret"

                            let state, serverFinal = challenged step
                            Expect.equal (text serverFinal) expected "server signature"
                            SaslServer.respond context state [||] |> expectSucceeded "alice"
                        }

                        test $"{mechanism}: c= with other binding data, or none, fails" {
                            let other = Array.copy binding
                            other[0] <- other[0] ^^^ 1uy

                            for cbind in [ other; [||] ] do
                                let step, _ = scram context mechanism "p=tls-server-end-point,," cbind "secret"
                                Expect.stringContains (expectFailed step) "channel binding" "reason"
                        }

                        test $"{mechanism}: a wrong password fails" {
                            let step, _ = scram context mechanism "p=tls-server-end-point,," binding "wrong"
                            Expect.equal (expectFailed step) "authentication failed" "reason"
                        }

                        test $"{mechanism}: n or y instead of p= fails" {
                            for flag in [ "n,,"; "y,," ] do
                                let reason =
                                    started context mechanism (Some(utf8 (flag + "n=alice,r=cn"))) |> expectFailed

                                Expect.stringContains reason "-PLUS" "reason"
                        }

                        test $"{mechanism}: another binding type fails (only tls-server-end-point)" {
                            for cbName in [ "tls-unique"; "tls-exporter"; "" ] do
                                let reason =
                                    started context mechanism (Some(utf8 $"p={cbName},,n=alice,r=cn"))
                                    |> expectFailed

                                Expect.stringContains reason "tls-server-end-point" "reason"
                        }

                        test $"{mechanism}: without TLS data there is nothing to bind to" {
                            let ctx = { context with ChannelBinding = None }

                            let reason =
                                started ctx mechanism (Some(utf8 "p=tls-server-end-point,,n=alice,r=cn"))
                                |> expectFailed

                            Expect.stringContains reason "TLS" "reason"
                        }

                    test "'y' to a server that offers -PLUS is a downgrade and fails (RFC 5802 §6)" {
                        for mechanism in [ "SCRAM-SHA-1"; "SCRAM-SHA-256" ] do
                            let reason =
                                started context mechanism (Some(utf8 "y,,n=alice,r=cn")) |> expectFailed

                            Expect.stringContains reason "downgrade" "reason"
                    }

                    test "'y' where no -PLUS is offered, and 'n' anywhere, log in without binding" {
                        let quiet =
                            { context with
                                ChannelBindingAdvertised = false
                            }

                        for ctx, gs2 in [ quiet, "y,,"; context, "n,,"; quiet, "n,," ] do
                            let step, _ = scram ctx "SCRAM-SHA-256" gs2 [||] "secret"
                            let state, _ = challenged step
                            SaslServer.respond ctx state [||] |> expectSucceeded "alice"
                    }

                    test "a -PLUS exchange started by an empty challenge works the same" {
                        let state, challenge = challenged (started context "SCRAM-SHA-256-PLUS" None)
                        Expect.equal challenge [||] "empty challenge"
                        let gs2 = "p=tls-server-end-point,,"
                        let bare = "n=alice,r=abc"

                        let state, serverFirst =
                            challenged (SaslServer.respond context state (utf8 (gs2 + bare)))

                        let final, _ =
                            ScramClient.clientFinal "SCRAM-SHA-256-PLUS" "secret" gs2 binding bare (text serverFirst)

                        let state, _ = challenged (SaslServer.respond context state (utf8 final))
                        SaslServer.respond context state [||] |> expectSucceeded "alice"
                    }
                ]
        ]
