/// The client mechanisms against the RFCs' own examples, and against hostile challenges.
module Pop3Functional.Core.Tests.SaslMechanismsTests

open System
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Pop3Functional.Core

let utf8 (s: string) = Encoding.UTF8.GetBytes s
let str (b: byte[]) = Encoding.UTF8.GetString b

let password user pw =
    SaslCredentials.Password(user, Secret.FromString pw, None)

let oauth user token =
    SaslCredentials.OAuth2(user, Secret.FromString token)

let inputs nonce = SaslInputs.WithNonce nonce

let started mechanism credentials nonce binding =
    match Sasl.start mechanism credentials (inputs nonce) binding with
    | Ok(client, ir) -> client, ir
    | Error e -> failtestf "start %s: %s" mechanism e.Message

let stepOk client (challenge: string) =
    match Sasl.step client (utf8 challenge) with
    | Ok(next, response) -> next, response
    | Error e -> failtestf "step: %s" e.Message

let stepError client (challenge: byte[]) =
    match Sasl.step client challenge with
    | Ok(_, response) -> failtestf "expected an error, answered %A" (str response)
    | Error e ->
        Expect.equal e.Kind ProtocolErrorKind.BadSaslChallenge "kind"
        Expect.equal e.Command "AUTH" "command"
        e

let startError mechanism credentials nonce binding =
    match Sasl.start mechanism credentials (inputs nonce) binding with
    | Ok _ -> failtestf "expected %s to be refused" mechanism
    | Error e -> e

// RFC 5802 §5 and RFC 7677 §3: user "user", password "pencil".
let sha1Nonce = "fyko+d2lbbFgONRv9qkxdawL"

let sha1ServerFirst =
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"

let sha1ClientFinal =
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="

let sha1ServerFinal = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
let sha256Nonce = "rOprNGfwEbeRWgbNEkqO"

let sha256ServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"

let sha256ClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="

let sha256ServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/// A SCRAM-SHA-256 client after the RFC 7677 server-first-message.
let private atServerFinal () =
    let client, _ = started "SCRAM-SHA-256" (password "user" "pencil") sha256Nonce None
    fst (stepOk client sha256ServerFirst)

let private scramFirst serverFirst =
    let client, _ = started "SCRAM-SHA-256" (password "user" "pencil") sha256Nonce None
    stepError client (utf8 serverFirst)

[<Tests>]
let vectors =
    testList
        "SASL mechanisms: RFC test vectors"
        [
            testCase "PLAIN, RFC 4616 §4: no authorization identity"
            <| fun () ->
                let client, ir = started "PLAIN" (password "tim" "tanstaaftanstaaf") "" None
                Expect.equal ir (Some(utf8 "\000tim\000tanstaaftanstaaf")) "message"
                Expect.equal (Sasl.finish client) (Ok()) "+OK ends it"

            testCase "PLAIN, RFC 4616 §4: Kurt acting as Ursel"
            <| fun () ->
                let credentials =
                    SaslCredentials.Password("Kurt", Secret.FromString "xipj3plmq", Some "Ursel")

                let _, ir = started "plain" credentials "" None
                Expect.equal ir (Some(utf8 "Ursel\000Kurt\000xipj3plmq")) "message"

            testCase "CRAM-MD5, RFC 2195 §2: tim signs the server's msg-id"
            <| fun () ->
                let client, ir = started "CRAM-MD5" (password "tim" "tanstaaftanstaaf") "" None
                Expect.isNone ir "the server speaks first"

                let client, response = stepOk client "<1896.697170952@postoffice.reston.mci.net>"

                Expect.equal (str response) "tim b913a602c7eda7a495b4e6e7334d3890" "response"
                Expect.equal (Sasl.finish client) (Ok()) "done"

            testCase "SCRAM-SHA-1, RFC 5802 §5"
            <| fun () ->
                let client, ir = started "SCRAM-SHA-1" (password "user" "pencil") sha1Nonce None
                Expect.equal (ir |> Option.map str) (Some $"n,,n=user,r={sha1Nonce}") "client-first-message"
                let client, final = stepOk client sha1ServerFirst
                Expect.equal (str final) sha1ClientFinal "client-final-message"
                Expect.isError (Sasl.finish client) "+OK before the server's signature is refused"
                let client, ack = stepOk client sha1ServerFinal
                Expect.isEmpty ack "the answer to server-final-message is empty (RFC 5034 §4)"
                Expect.equal (Sasl.finish client) (Ok()) "verified"

            testCase "SCRAM-SHA-256, RFC 7677 §3"
            <| fun () ->
                let client, ir = started "SCRAM-SHA-256" (password "user" "pencil") sha256Nonce None
                Expect.equal (ir |> Option.map str) (Some $"n,,n=user,r={sha256Nonce}") "client-first-message"
                let client, final = stepOk client sha256ServerFirst
                Expect.equal (str final) sha256ClientFinal "client-final-message"
                let client, ack = stepOk client sha256ServerFinal
                Expect.isEmpty ack "empty answer"
                Expect.equal (Sasl.finish client) (Ok()) "verified"

            testCase "LOGIN answers the user name, then the password, whatever the prompts say"
            <| fun () ->
                let client, ir = started "LOGIN" (password "bob" "s3cret") "" None
                Expect.isNone ir "no initial response"
                let client, first = stepOk client "Password:"
                let client, second = stepOk client "Username:"
                Expect.equal (str first, str second) ("bob", "s3cret") "by order"
                Expect.equal (Sasl.finish client) (Ok()) "done"
                stepError client (utf8 "more?") |> ignore

            testCase "XOAUTH2: user=...^Aauth=Bearer ...^A^A (Google, Microsoft)"
            <| fun () ->
                let client, ir =
                    started
                        "XOAUTH2"
                        (oauth "someuser@example.com" "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
                        ""
                        None

                Expect.equal
                    (ir |> Option.map str)
                    (Some
                        "user=someuser@example.com\001auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\001\001")
                    "initial response"

                Expect.equal (Sasl.finish client) (Ok()) "+OK ends it"

            testCase "XOAUTH2: the error challenge is answered empty and remembered"
            <| fun () ->
                let client, _ = started "XOAUTH2" (oauth "u@example.com" "tok") "" None

                let json =
                    """{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}"""

                let client, response = stepOk client json
                Expect.isEmpty response "empty response"
                Expect.equal client.ServerError (Some json) "the error text"
                Expect.isError (Sasl.finish client) "+OK after an error is not trusted"
                stepError client (utf8 "again") |> ignore

            testCase "XOAUTH2: an empty error challenge is answered too, with no error text to keep"
            <| fun () ->
                let client, _ = started "XOAUTH2" (oauth "u@example.com" "tok") "" None
                let client, response = stepOk client ""
                Expect.isEmpty response "empty response"
                Expect.isNone client.ServerError "nothing to keep"
                Expect.isError (Sasl.finish client) "+OK after an error is not trusted"

            testCase "OAUTHBEARER, RFC 7628 §4.1: gs2 header, host, port, auth"
            <| fun () ->
                let credentials =
                    oauth "user@example.com" "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="

                let client, ir =
                    match
                        Sasl.start
                            "OAUTHBEARER"
                            credentials
                            {
                                Nonce = ""
                                Host = Some "server.example.com"
                                Port = Some 143
                            }
                            None
                    with
                    | Ok x -> x
                    | Error e -> failtest e.Message

                Expect.equal
                    (ir |> Option.map str)
                    (Some
                        "n,a=user@example.com,\001host=server.example.com\001port=143\001auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\001\001")
                    "initial response"

                let client, response = stepOk client """{"status":"invalid_token"}"""
                Expect.equal response [| 1uy |] "RFC 7628 §3.2.3: answered with ^A"
                Expect.equal client.ServerError (Some """{"status":"invalid_token"}""") "remembered"

            testCase "OAUTHBEARER without host and port, and a user name with ',' and '=' escaped"
            <| fun () ->
                let _, ir = started "OAUTHBEARER" (oauth "a,b=c" "tok") "" None
                Expect.equal (ir |> Option.map str) (Some "n,a=a=2Cb=3Dc,\001auth=Bearer tok\001\001") "escaped"
        ]

[<Tests>]
let scram =
    testList
        "SCRAM: what the client checks"
        [
            testCase "a tampered server signature fails"
            <| fun () ->
                let tampered = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5="
                let e = stepError (atServerFinal ()) (utf8 tampered)
                Expect.stringContains e.Message "does not verify" "message"

            testCase "a server signature of the other hash's length fails"
            <| fun () -> stepError (atServerFinal ()) (utf8 sha1ServerFinal) |> ignore

            testCase "+OK without server-final-message fails finish"
            <| fun () ->
                match Sasl.finish (atServerFinal ()) with
                | Error e ->
                    Expect.equal e.Kind ProtocolErrorKind.BadSaslChallenge "kind"
                    Expect.stringContains e.Message "signature" "says why"
                | Ok() -> failtest "accepted without the server's proof"

            testCase "+OK right after client-first-message fails finish"
            <| fun () ->
                let client, _ = started "SCRAM-SHA-1" (password "user" "pencil") sha1Nonce None
                Expect.isError (Sasl.finish client) "no proof"

            testCase "an e= error fails with the server's error"
            <| fun () ->
                let e = stepError (atServerFinal ()) (utf8 "e=invalid-proof")
                Expect.stringContains e.Message "invalid-proof" "the error"

            testCase "a nonce that does not start with ours fails"
            <| fun () ->
                scramFirst "r=XXprNGfwEbeRWgbNEkqO%hvYDpWUa2R,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                |> ignore

            testCase "a nonce with nothing added by the server fails"
            <| fun () -> scramFirst $"r={sha256Nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096" |> ignore

            testCase "a salt that is not base64 fails"
            <| fun () -> scramFirst $"r={sha256Nonce}abc,s=W22Z*J0S,i=4096" |> ignore

            testCase "an empty salt fails"
            <| fun () -> scramFirst $"r={sha256Nonce}abc,s=,i=4096" |> ignore

            for iterations in [ "4095"; "1"; "0"; "1000001"; "99999999999"; "-4096"; "+4096"; "4k"; "" ] do
                testCase $"the iteration count %A{iterations} fails"
                <| fun () ->
                    scramFirst $"r={sha256Nonce}abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i={iterations}"
                    |> ignore

            testCase "a mandatory extension (m=) fails"
            <| fun () -> scramFirst $"m=x,r={sha256Nonce}abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096" |> ignore

            testCase "fields out of order fail"
            <| fun () -> scramFirst $"s=W22ZaJ0SNY7soEsUEjb6gQ==,r={sha256Nonce}abc,i=4096" |> ignore

            testCase "an extension after i= is allowed"
            <| fun () ->
                let client, _ = started "SCRAM-SHA-256" (password "user" "pencil") sha256Nonce None

                let _, final =
                    stepOk client $"r={sha256Nonce}abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=future"

                Expect.stringStarts (str final) $"c=biws,r={sha256Nonce}abc,p=" "answered"

            testCase "a challenge after the server proved itself fails"
            <| fun () ->
                let client, _ = stepOk (atServerFinal ()) sha256ServerFinal
                stepError client (utf8 "v=again") |> ignore

            testCase "the user name is escaped (=2C, =3D) and the authorization identity sent as a="
            <| fun () ->
                let credentials =
                    SaslCredentials.Password("a,b=c", Secret.FromString "pencil", Some "admin")

                let _, ir = started "SCRAM-SHA-1" credentials sha1Nonce None

                Expect.equal (ir |> Option.map str) (Some $"n,a=admin,n=a=2Cb=3Dc,r={sha1Nonce}") "client-first"

            testCase "the password is SASLprep'd: a soft hyphen changes nothing (RFC 5802 §2.2)"
            <| fun () ->
                let client, _ =
                    started "SCRAM-SHA-256" (password "user" "pen\u00ADcil") sha256Nonce None

                let _, final = stepOk client sha256ServerFirst
                Expect.equal (str final) sha256ClientFinal "same proof as for pencil"

            testCase "a password SASLprep refuses is a usage error that names no character"
            <| fun () ->
                let e = startError "SCRAM-SHA-256" (password "user" "pen\u0007cil") sha256Nonce None
                Expect.equal e.Kind UsageErrorKind.InvalidArgument "kind"
                Expect.isFalse (e.Message.Contains "pen") "no secret in the message"

            testCase "-PLUS without channel-binding data is a usage error"
            <| fun () ->
                let e = startError "SCRAM-SHA-256-PLUS" (password "user" "pencil") sha256Nonce None
                Expect.stringContains e.Message "channel-binding" "says why"

            testCase "-PLUS sends p=tls-server-end-point and binds the data in c= (RFC 5929 §4)"
            <| fun () ->
                let binding = [| 1uy; 2uy; 3uy; 250uy |]

                let client, ir =
                    started
                        "SCRAM-SHA-256-PLUS"
                        (password "user" "pencil")
                        sha256Nonce
                        (Some(ChannelBinding.TlsServerEndPoint binding))

                Expect.equal
                    (ir |> Option.map str)
                    (Some $"p=tls-server-end-point,,n=user,r={sha256Nonce}")
                    "gs2 header"

                let _, final = stepOk client sha256ServerFirst
                let expected = Array.append (utf8 "p=tls-server-end-point,,") binding
                Expect.stringStarts (str final) $"c={Convert.ToBase64String expected}," "c= carries the binding"

            testCase "-PLUS names the binding type it gets in p= (RFC 5802 §6-7): tls-unique (RFC 5929 §3)"
            <| fun () ->
                let binding =
                    [| 7uy; 8uy; 9uy; 10uy; 11uy; 12uy; 13uy; 14uy; 15uy; 16uy; 17uy; 18uy |]

                let client, ir =
                    started
                        "SCRAM-SHA-1-PLUS"
                        (password "user" "pencil")
                        sha1Nonce
                        (Some(ChannelBinding.TlsUnique binding))

                Expect.equal (ir |> Option.map str) (Some $"p=tls-unique,,n=user,r={sha1Nonce}") "gs2 header"
                let _, final = stepOk client sha1ServerFirst
                let expected = Array.append (utf8 "p=tls-unique,,") binding
                Expect.stringStarts (str final) $"c={Convert.ToBase64String expected}," "c= carries the binding"

            testCase "-PLUS refuses a malformed binding type or empty data (RFC 5802 §7 cb-name)"
            <| fun () ->
                for binding in
                    [
                        {
                            Type = "tls unique"
                            Data = [| 1uy |]
                        }
                        { Type = ""; Data = [| 1uy |] }
                        { Type = "tls-x,y"; Data = [| 1uy |] }
                        { Type = "tls-unique"; Data = [||] }
                        { Type = "tls-unique"; Data = null }
                    ] do
                    let e =
                        startError "SCRAM-SHA-256-PLUS" (password "user" "pencil") sha256Nonce (Some binding)

                    Expect.equal e.Kind UsageErrorKind.InvalidArgument $"kind for {binding}"

            testCase "with channel-binding data a plain SCRAM says y (RFC 5802 §6)"
            <| fun () ->
                let client, ir =
                    started
                        "SCRAM-SHA-1"
                        (password "user" "pencil")
                        sha1Nonce
                        (Some(ChannelBinding.TlsUnique [| 9uy |]))

                Expect.equal (ir |> Option.map str) (Some $"y,,n=user,r={sha1Nonce}") "y flag"
                let _, final = stepOk client sha1ServerFirst
                Expect.stringStarts (str final) "c=eSws," "c= is base64 of y,,"

            for nonce in [ ""; "short"; "has,a,comma,in,it!"; "has a space in it ok"; null ] do
                testCase $"the client nonce %A{nonce} is refused"
                <| fun () -> startError "SCRAM-SHA-1" (password "user" "pencil") nonce None |> ignore
        ]

[<Tests>]
let misuse =
    testList
        "SASL mechanisms: credentials a mechanism cannot carry"
        [
            testCase "an unknown mechanism is refused and the implemented ones are named"
            <| fun () ->
                let e = startError "DIGEST-MD5" (password "u" "p") "" None
                Expect.stringContains e.Message "SCRAM-SHA-256" "lists what exists"

            testCase "a token with a password mechanism, and a password with a token mechanism"
            <| fun () ->
                startError "PLAIN" (oauth "u" "t") "" None |> ignore
                startError "XOAUTH2" (password "u" "p") "" None |> ignore

            testCase "PLAIN refuses NUL in the password; LOGIN and CRAM-MD5 an authorization identity"
            <| fun () ->
                startError "PLAIN" (password "u" "p\000w") "" None |> ignore
                let withAuthz = SaslCredentials.Password("u", Secret.FromString "p", Some "other")
                startError "LOGIN" withAuthz "" None |> ignore
                startError "CRAM-MD5" withAuthz "" None |> ignore

            testCase "an empty, disposed or null password is refused, not thrown"
            <| fun () ->
                let disposed = Secret.FromString "p"
                (disposed :> IDisposable).Dispose()

                for secret in [ Secret.FromString ""; disposed; null ] do
                    startError "PLAIN" (SaslCredentials.Password("u", secret, None)) "" None
                    |> ignore

            testCase "a token holding ^A or a space, and a user name with a control, are refused"
            <| fun () ->
                startError "XOAUTH2" (oauth "u" "a\001b") "" None |> ignore
                startError "OAUTHBEARER" (oauth "u" "a b") "" None |> ignore
                startError "XOAUTH2" (oauth "u\001x" "t") "" None |> ignore

            testCase "OAUTHBEARER refuses a port outside 1..65535"
            <| fun () ->
                match
                    Sasl.start
                        "OAUTHBEARER"
                        (oauth "u" "t")
                        {
                            Nonce = ""
                            Host = None
                            Port = Some 70000
                        }
                        None
                with
                | Error e -> Expect.stringContains e.Message "70000" "says which"
                | Ok _ -> failtest "accepted"

            testCase "the client's ToString shows the mechanism only"
            <| fun () ->
                let client, _ = started "SCRAM-SHA-256" (password "user" "pencil") sha256Nonce None
                Expect.equal (string client) "SaslClient(SCRAM-SHA-256)" "no keys"
                Expect.isFalse ((sprintf "%A" client).Contains "pencil") "%A neither"
        ]

/// Every mechanism, started with good credentials, stepped with a hostile server's challenges.
let private anyClient (index: int) =
    let mechanisms = Sasl.mechanisms

    let mechanism = mechanisms[abs index % mechanisms.Length]

    let credentials =
        if mechanism = "XOAUTH2" || mechanism = "OAUTHBEARER" then
            oauth "user" "token"
        else
            password "user" "pencil"

    fst (started mechanism credentials sha256Nonce (Some(ChannelBinding.TlsServerEndPoint [| 7uy |])))

let private config =
    { FsCheckConfig.defaultConfig with
        maxTest = 300
    }

[<Tests>]
let properties =
    testList
        "SASL mechanisms: properties"
        [
            testPropertyWithConfig config "no mechanism throws on arbitrary challenges, and finish never throws"
            <| fun (index: int) (challenges: byte[] list) ->
                let mutable client = anyClient index

                for challenge in challenges do
                    match Sasl.step client challenge with
                    | Ok(next, _) -> client <- next
                    | Error e -> Expect.equal e.Kind ProtocolErrorKind.BadSaslChallenge "kind"

                Sasl.finish client |> ignore

            testPropertyWithConfig
                config
                "SCRAM never throws on a server-first-message that starts right, whatever follows"
            <| fun (tail: string) (final: byte[]) ->
                let client, _ = started "SCRAM-SHA-1" (password "user" "pencil") sha1Nonce None
                let tail = if isNull tail then "" else tail

                match Sasl.step client (utf8 ($"r={sha1Nonce}" + tail)) with
                | Ok(next, _) -> Sasl.step next final |> ignore
                | Error _ -> ()

            testPropertyWithConfig config "step on null is an error or an answer, never an exception"
            <| fun (index: int) ->
                Sasl.step (anyClient index) null |> ignore
                true
        ]
