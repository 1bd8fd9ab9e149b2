module Pop3Functional.Simulator.Tests.SaslServerTests

open System
open System.Security.Cryptography
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Pop3Functional.Simulator
open Pop3Functional.Simulator.Tests.SaslSteps

let private utf8 (s: string) = Encoding.UTF8.GetBytes s
let private text (b: byte[]) = Encoding.UTF8.GetString b

/// The tls-server-end-point data every test context holds (SCRAM-*-PLUS binds to it).
let private testBinding = Array.init 32 (fun i -> byte (i * 7 + 3))

/// Each user's password doubles as the user's one bearer token (XOAUTH2, OAUTHBEARER).
let private contextWith (users: (string * string) list) (nonce: string) (salt: byte[]) (iterations: int) =
    {
        LookupPassword = fun user -> users |> List.tryFind (fun (u, _) -> u = user) |> Option.map snd
        Nonce = nonce
        Hostname = "pop.example.org"
        ScramSalt = salt
        ScramIterations = iterations
        LookupTokens = fun user -> users |> List.filter (fun (u, _) -> u = user) |> List.map snd
        ChannelBinding = Some testBinding
        ChannelBindingAdvertised = false
    }

/// alice/secret, bob/hunter2; a fixed nonce and salt.
let private context =
    contextWith [ "alice", "secret"; "bob", "hunter2" ] "N0nce-ABCDEFGHIJKLmnop" (Array.init 16 byte) 4096

/// Starts, then answers every challenge with the next response; the step the last one gives.
let private exchange ctx mechanism initial (responses: byte[] list) =
    let rec go step responses =
        match step, responses with
        | SaslServerStep.Challenge(state, _), r :: rest -> go (SaslServer.respond ctx state r) rest
        | step, _ -> step

    go (started ctx mechanism initial) responses

// --- a client, written from the RFCs, to play against the server ---

let private isSha1 (mechanism: string) = mechanism.StartsWith "SCRAM-SHA-1"

let private hashName (mechanism: string) =
    if isSha1 mechanism then
        HashAlgorithmName.SHA1, 20
    else
        HashAlgorithmName.SHA256, 32

let private clientHmac (mechanism: string) (key: byte[]) (data: byte[]) =
    if isSha1 mechanism then
        HMACSHA1.HashData(key, data)
    else
        HMACSHA256.HashData(key, data)

let private clientHash (mechanism: string) (data: byte[]) =
    if isSha1 mechanism then
        SHA1.HashData data
    else
        SHA256.HashData data

/// RFC 5802 §5.1: ',' and '=' in a user name are written "=2C" and "=3D".
let private escapeName (name: string) =
    name.Replace("=", "=3D").Replace(",", "=2C")

/// The attributes of a SCRAM message by letter.
let private attributes (message: string) =
    message.Split ',' |> Array.map (fun p -> p[0], p[2..]) |> Map.ofArray

/// client-final-message for this server-first-message, and the server-final-message the client
/// expects (RFC 5802 §3). The password is used as given: the caller passes it prepared. nonce, when
/// given, replaces r= (and is signed like the rest): a client that answers with another nonce.
let private scramClientFinalWith
    (nonce: string option)
    mechanism
    (password: string)
    (gs2Header: string)
    (clientFirstBare: string)
    serverFirst
    =
    let a = attributes serverFirst
    let salt = Convert.FromBase64String a['s']
    let iterations = int a['i']
    let algorithm, length = hashName mechanism

    let salted =
        Rfc2898DeriveBytes.Pbkdf2(utf8 password, salt, iterations, algorithm, length)

    let clientKey = clientHmac mechanism salted (utf8 "Client Key")
    let storedKey = clientHash mechanism clientKey

    // cbind-input (RFC 5802 §7): the gs2-header, then the channel-binding data with p=.
    let cbindInput =
        if gs2Header.StartsWith "p=" then
            Array.append (utf8 gs2Header) testBinding
        else
            utf8 gs2Header

    let withoutProof =
        $"c={Convert.ToBase64String cbindInput},r={defaultArg nonce a['r']}"

    let authMessage = utf8 (clientFirstBare + "," + serverFirst + "," + withoutProof)
    let signature = clientHmac mechanism storedKey authMessage
    let proof = Array.map2 (^^^) clientKey signature
    let serverKey = clientHmac mechanism salted (utf8 "Server Key")
    let serverSignature = clientHmac mechanism serverKey authMessage

    withoutProof + ",p=" + Convert.ToBase64String proof, "v=" + Convert.ToBase64String serverSignature

let private scramClientFinal = scramClientFinalWith None

/// A correct client for each mechanism, with or without an initial response; checks the server's
/// signature for SCRAM.
let private client ctx (mechanism: string) (user: string) (password: string) (clientNonce: string) (initial: bool) =
    let respond state (bytes: byte[]) = SaslServer.respond ctx state bytes

    match mechanism with
    | "PLAIN" ->
        let message = utf8 ("\000" + user + "\000" + password)

        if initial then
            started ctx mechanism (Some message)
        else
            let state, challenge = challenged (started ctx mechanism None)
            Expect.equal challenge [||] "PLAIN: empty challenge first"
            respond state message
    | "LOGIN" ->
        let state =
            if initial then
                fst (challenged (started ctx mechanism (Some(utf8 user))))
            else
                let state, prompt = challenged (started ctx mechanism None)
                Expect.equal (text prompt) "Username:" "first prompt"
                let state, prompt = challenged (respond state (utf8 user))
                Expect.equal (text prompt) "Password:" "second prompt"
                state

        respond state (utf8 password)
    | "CRAM-MD5" ->
        let state, challenge = challenged (started ctx mechanism None)
        let digest = HMACMD5.HashData(utf8 password, challenge)
        respond state (utf8 (user + " " + Convert.ToHexStringLower digest))
    | "XOAUTH2" ->
        // The password is the bearer token; an error challenge is answered with an empty line.
        let message = utf8 ("user=" + user + "\001auth=Bearer " + password + "\001\001")

        let step =
            if initial then
                started ctx mechanism (Some message)
            else
                let state, challenge = challenged (started ctx mechanism None)
                Expect.equal challenge [||] "XOAUTH2: empty challenge first (two-line form)"
                respond state message

        match step with
        | SaslServerStep.Challenge(state, _) -> respond state [||]
        | other -> other
    | "OAUTHBEARER" ->
        let message =
            utf8 ($"n,a={escapeName user},\001host=pop.example.org\001port=995\001auth=Bearer {password}\001\001")

        let step =
            if initial then
                started ctx mechanism (Some message)
            else
                let state, challenge = challenged (started ctx mechanism None)
                Expect.equal challenge [||] "OAUTHBEARER: empty challenge first"
                respond state message

        // RFC 7628 §3.2.2: the error challenge is answered with %x01.
        match step with
        | SaslServerStep.Challenge(state, _) -> respond state [| 1uy |]
        | other -> other
    | _ ->
        let gs2Header =
            if mechanism.EndsWith "-PLUS" then
                "p=tls-server-end-point,,"
            else
                "n,,"

        let bare = $"n={escapeName user},r={clientNonce}"

        let first =
            if initial then
                started ctx mechanism (Some(utf8 (gs2Header + bare)))
            else
                let state, challenge = challenged (started ctx mechanism None)
                Expect.equal challenge [||] "SCRAM: empty challenge first"
                respond state (utf8 (gs2Header + bare))

        match first with
        | SaslServerStep.Challenge(state, serverFirst) ->
            let final, expected =
                scramClientFinal mechanism password gs2Header bare (text serverFirst)

            match respond state (utf8 final) with
            | SaslServerStep.Challenge(state, serverFinal) ->
                Expect.equal (text serverFinal) expected "server signature"
                respond state [||]
            | other -> other
        | other -> other

// --- generators ---

/// Printable ASCII without ',' (RFC 5802 §7 printable): nonces.
let private genNonce =
    Gen.choose (0x21, 0x7E)
    |> Gen.filter (fun c -> c <> int ',')
    |> Gen.map char
    |> Gen.nonEmptyListOf
    |> Gen.map (fun cs -> String(Array.ofList cs))

/// Printable ASCII, spaces excluded: user names and passwords that every mechanism carries.
let private genPrintable =
    Gen.choose (0x21, 0x7E)
    |> Gen.map char
    |> Gen.nonEmptyListOf
    |> Gen.map (fun cs -> String(Array.ofList cs))

/// Passwords SASLprep leaves as they are: printable ASCII, space, and letters already in NFKC form.
let private genStablePassword =
    Gen.elements ([ ' ' .. '~' ] @ [ 'é'; 'ß'; 'Ж'; '中'; '€'; 'ñ'; 'Ω' ])
    |> Gen.nonEmptyListOf
    |> Gen.map (fun cs -> String(Array.ofList cs))
    |> Gen.filter (fun s -> s.Trim() <> "")

/// Any UTF-16 code units, lone surrogates included, rich in the characters SASLprep treats apart.
let private genUtf16 =
    Gen.frequency
        [
            3, Gen.choose (0, 0xFFFF) |> Gen.map char
            2, Gen.choose (0x20, 0x7E) |> Gen.map char
            2,
            Gen.elements (List.ofSeq "\u00A0\u00AD\u2168\u00AA\uFEFF\uFFFE\uFFFF\uFDD0\uD800\uDC00\uE000\u0301\u200B")
        ]
    |> Gen.arrayOf
    |> Gen.map String

let private genBytes =
    Gen.frequency
        [
            3, Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte)
            3, Gen.arrayOf (Gen.elements (Array.append "nyp=,aicrvs0123=2C=3D\000 "B [| 0xFFuy |]))
            1, Gen.constant [||]
        ]

/// A valid message with one random edit: a character replaced, inserted or removed, or a cut.
let private genMutation (valid: string) =
    gen {
        let! position = Gen.choose (0, valid.Length)
        let! c = Gen.elements (List.ofSeq ",=abcnprv/+\000\u00e9")
        let! kind = Gen.choose (0, 3)

        return
            match kind with
            | 0 when position < valid.Length -> valid.Remove(position, 1).Insert(position, string c)
            | 1 -> valid.Insert(position, string c)
            | 2 when position < valid.Length -> valid.Remove(position, 1)
            | _ -> valid[.. position - 1]
    }

let private config n =
    { FsCheckConfig.defaultConfig with
        maxTest = n
    }

// --- the RFC examples ---

/// RFC 5802 §5: user "user", password "pencil".
let private rfc5802Context =
    contextWith [ "user", "pencil" ] "3rfcNHYJY1ZVvWVs7j" (Convert.FromBase64String "QSXCR+Q6sek8bf92") 4096

let private rfc5802First = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"

let private rfc5802Final =
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="

/// RFC 7677 §3: the same account with SCRAM-SHA-256.
let private rfc7677Context =
    contextWith
        [ "user", "pencil" ]
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        (Convert.FromBase64String "W22ZaJ0SNY7soEsUEjb6gQ==")
        4096

let private rfc7677First = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"

let private rfc7677Final =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="

/// The RFC 5802 exchange up to the client-final-message.
let private rfc5802AfterFirst () =
    fst (challenged (started rfc5802Context "SCRAM-SHA-1" (Some(utf8 rfc5802First))))

let private scramMechanisms =
    [ "SCRAM-SHA-1"; "SCRAM-SHA-256"; "SCRAM-SHA-1-PLUS"; "SCRAM-SHA-256-PLUS" ]

[<Tests>]
let tests =
    testList
        "SaslServer"
        [
            testList
                "mechanisms"
                [
                    test "the nine mechanisms, uppercase" {
                        Expect.equal
                            SaslServer.mechanisms
                            [
                                "PLAIN"
                                "LOGIN"
                                "CRAM-MD5"
                                "SCRAM-SHA-1"
                                "SCRAM-SHA-256"
                                "SCRAM-SHA-1-PLUS"
                                "SCRAM-SHA-256-PLUS"
                                "XOAUTH2"
                                "OAUTHBEARER"
                            ]
                            "mechanisms"
                    }

                    test "names are compared case-insensitively" {
                        for name in [ "plain"; "Login"; "cram-md5"; "scram-sha-1"; "Scram-Sha-256" ] do
                            Expect.isOk (SaslServer.start context name None) name
                    }

                    test "an unknown mechanism is an Error" {
                        for name in [ "GSSAPI"; "SCRAM-SHA-512-PLUS"; "XOAUTH"; ""; "PLAIN " ] do
                            Expect.isError (SaslServer.start context name None) name
                    }

                    test "a correct client succeeds with every mechanism, with and without an initial response" {
                        for mechanism in SaslServer.mechanisms do
                            for initial in [ true; false ] do
                                if not (mechanism = "CRAM-MD5" && initial) then
                                    client context mechanism "alice" "secret" "cNonce" initial
                                    |> expectSucceeded "alice"
                    }

                    test "a wrong password fails with every mechanism" {
                        for mechanism in SaslServer.mechanisms do
                            client context mechanism "alice" "Secret" "cNonce" false
                            |> expectFailed
                            |> ignore

                            client context mechanism "alice" "hunter2" "cNonce" false
                            |> expectFailed
                            |> ignore
                    }

                    test "an unknown user fails with every mechanism, with the text a wrong password gets" {
                        for mechanism in SaslServer.mechanisms do
                            let unknown =
                                client context mechanism "carol" "secret" "cNonce" false |> expectFailed

                            let wrong = client context mechanism "alice" "wrong" "cNonce" false |> expectFailed
                            Expect.equal unknown wrong mechanism
                    }

                    test "failure texts hold no password" {
                        for mechanism in SaslServer.mechanisms do
                            let reason = client context mechanism "alice" "wrong" "cNonce" false |> expectFailed
                            Expect.isFalse (reason.Contains "secret" || reason.Contains "wrong") reason
                    }
                ]

            testList
                "PLAIN"
                [
                    test "without an initial response the server sends an empty challenge" {
                        let _, challenge = challenged (started context "PLAIN" None)
                        Expect.equal challenge [||] "empty"
                    }

                    test "an authzid equal to the authcid is accepted; another one is not" {
                        started context "PLAIN" (Some(utf8 "alice\000alice\000secret"))
                        |> expectSucceeded "alice"

                        started context "PLAIN" (Some(utf8 "bob\000alice\000secret"))
                        |> expectFailed
                        |> ignore
                    }

                    test "malformed messages fail" {
                        for message in
                            [
                                ""
                                "alice"
                                "\000alice"
                                "\000alice\000secret\000"
                                "\000\000secret"
                                "\000alice\000"
                                "x\000\000"
                            ] do
                            started context "PLAIN" (Some(utf8 message)) |> expectFailed |> ignore

                        started context "PLAIN" (Some [| 0uy; 0xC3uy; 0x28uy; 0uy; 0x41uy |])
                        |> expectFailed
                        |> ignore
                    }

                    test "passwords are compared after SASLprep (RFC 4616 §2)" {
                        let ctx = contextWith [ "u", "I X"; "v", "a\u0007b" ] "N" [||] 1

                        started ctx "PLAIN" (Some(utf8 "\000u\000I\u00A0\u00ADX"))
                        |> expectSucceeded "u"

                        started ctx "PLAIN" (Some(utf8 "\000u\000\u2168")) |> expectFailed |> ignore
                        // A stored password SASLprep refuses matches nothing, itself included.
                        started ctx "PLAIN" (Some(utf8 "\000v\000a\u0007b")) |> expectFailed |> ignore
                    }
                ]

            testList
                "LOGIN"
                [
                    test "an initial response is the user name: the server asks only for the password" {
                        let state, prompt = challenged (started context "LOGIN" (Some(utf8 "alice")))
                        Expect.equal (text prompt) "Password:" "prompt"
                        SaslServer.respond context state (utf8 "secret") |> expectSucceeded "alice"
                    }

                    test "an unknown user is asked for the password all the same" {
                        let state, _ = challenged (started context "LOGIN" None)
                        let state, prompt = challenged (SaslServer.respond context state (utf8 "carol"))
                        Expect.equal (text prompt) "Password:" "prompt"
                        SaslServer.respond context state (utf8 "secret") |> expectFailed |> ignore
                    }

                    test "an empty user name or non-UTF-8 fails" {
                        let state, _ = challenged (started context "LOGIN" (Some [||]))
                        SaslServer.respond context state (utf8 "secret") |> expectFailed |> ignore
                        let state, _ = challenged (started context "LOGIN" (Some [| 0xFFuy |]))
                        SaslServer.respond context state (utf8 "secret") |> expectFailed |> ignore
                    }
                ]

            testList
                "CRAM-MD5"
                [
                    let rfc2195 =
                        contextWith [ "tim", "tanstaaftanstaaf" ] "1896.697170952" [||] 1
                        |> fun c ->
                            { c with
                                Hostname = "postoffice.reston.mci.net"
                            }

                    test "the RFC 2195 example: the challenge and the digest" {
                        let state, challenge = challenged (started rfc2195 "CRAM-MD5" None)
                        Expect.equal (text challenge) "<1896.697170952@postoffice.reston.mci.net>" "challenge"

                        SaslServer.respond rfc2195 state (utf8 "tim b913a602c7eda7a495b4e6e7334d3890")
                        |> expectSucceeded "tim"
                    }

                    test "the digest is compared case-insensitively" {
                        let state, _ = challenged (started rfc2195 "CRAM-MD5" None)

                        SaslServer.respond rfc2195 state (utf8 "tim B913A602C7EDA7A495B4E6E7334D3890")
                        |> expectSucceeded "tim"
                    }

                    test "a user name with a space: the digest follows the last space" {
                        let ctx = contextWith [ "tim smith", "pw" ] "1896.697170952" [||] 1
                        client ctx "CRAM-MD5" "tim smith" "pw" "" false |> expectSucceeded "tim smith"
                    }

                    test "an initial response fails: the server speaks first" {
                        started rfc2195 "CRAM-MD5" (Some(utf8 "tim b913a602c7eda7a495b4e6e7334d3890"))
                        |> expectFailed
                        |> ignore

                        started rfc2195 "CRAM-MD5" (Some [||]) |> expectFailed |> ignore
                    }

                    test "malformed responses fail" {
                        for response in
                            [
                                ""
                                "tim"
                                " b913a602c7eda7a495b4e6e7334d3890"
                                "tim b913a602c7eda7a495b4e6e7334d389"
                                "tim b913a602c7eda7a495b4e6e7334d38900"
                                "tim g913a602c7eda7a495b4e6e7334d3890"
                                "tim b913a602c7eda7a495b4e6e7334d3890 "
                                "timb913a602c7eda7a495b4e6e7334d3890"
                            ] do
                            let state, _ = challenged (started rfc2195 "CRAM-MD5" None)
                            SaslServer.respond rfc2195 state (utf8 response) |> expectFailed |> ignore
                    }
                ]

            testList
                "SCRAM"
                [
                    test "RFC 5802 §5: server-first, the proof and the server signature (SCRAM-SHA-1)" {
                        let state, serverFirst =
                            challenged (started rfc5802Context "SCRAM-SHA-1" (Some(utf8 rfc5802First)))

                        Expect.equal
                            (text serverFirst)
                            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
                            "server-first-message"

                        let state, serverFinal =
                            challenged (SaslServer.respond rfc5802Context state (utf8 rfc5802Final))

                        Expect.equal (text serverFinal) "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=" "server-final-message"
                        SaslServer.respond rfc5802Context state [||] |> expectSucceeded "user"
                    }

                    test "RFC 7677 §3: the same with SCRAM-SHA-256" {
                        let state, serverFirst =
                            challenged (started rfc7677Context "SCRAM-SHA-256" (Some(utf8 rfc7677First)))

                        Expect.equal
                            (text serverFirst)
                            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                            "server-first-message"

                        let state, serverFinal =
                            challenged (SaslServer.respond rfc7677Context state (utf8 rfc7677Final))

                        Expect.equal
                            (text serverFinal)
                            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
                            "server-final-message"

                        SaslServer.respond rfc7677Context state [||] |> expectSucceeded "user"
                    }

                    test "the RFC 5802 proof does not pass as SCRAM-SHA-256" {
                        let ctx =
                            { rfc5802Context with
                                Nonce = "3rfcNHYJY1ZVvWVs7j"
                            }

                        let state, _ = challenged (started ctx "SCRAM-SHA-256" (Some(utf8 rfc5802First)))
                        SaslServer.respond ctx state (utf8 rfc5802Final) |> expectFailed |> ignore
                    }

                    test "a non-empty answer to server-final-message fails" {
                        let state, _ =
                            challenged (SaslServer.respond rfc5802Context (rfc5802AfterFirst ()) (utf8 rfc5802Final))

                        SaslServer.respond rfc5802Context state (utf8 "x") |> expectFailed |> ignore
                    }

                    test "user names with ',' and '=' are decoded from =2C and =3D" {
                        let ctx = contextWith [ "a,b=c", "pw" ] "srv" (Array.init 8 byte) 4096

                        for mechanism in scramMechanisms do
                            client ctx mechanism "a,b=c" "pw" "cn" true |> expectSucceeded "a,b=c"
                    }

                    test "a bad '=' escape in the user name fails" {
                        for name in [ "a=2"; "a=41"; "a=b"; "="; "" ] do
                            started context "SCRAM-SHA-1" (Some(utf8 $"n,,n={name},r=abc"))
                            |> expectFailed
                            |> ignore
                    }

                    test "an authzid naming the user is accepted; c= must then carry that gs2-header" {
                        let gs2 = "n,a=alice,"
                        let bare = "n=alice,r=cn"

                        for mechanism in [ "SCRAM-SHA-1"; "SCRAM-SHA-256" ] do
                            let state, serverFirst =
                                challenged (started context mechanism (Some(utf8 (gs2 + bare))))

                            let final, _ = scramClientFinal mechanism "secret" gs2 bare (text serverFirst)
                            let state, _ = challenged (SaslServer.respond context state (utf8 final))
                            SaslServer.respond context state [||] |> expectSucceeded "alice"

                            // The same proof computed over c=biws does not match this gs2-header.
                            let state, serverFirst =
                                challenged (started context mechanism (Some(utf8 (gs2 + bare))))

                            let final, _ = scramClientFinal mechanism "secret" "n,," bare (text serverFirst)
                            SaslServer.respond context state (utf8 final) |> expectFailed |> ignore
                    }

                    test "an authzid naming someone else fails" {
                        started context "SCRAM-SHA-256" (Some(utf8 "n,a=bob,n=alice,r=cn"))
                        |> expectFailed
                        |> ignore
                    }

                    test "'y' (client can bind, thinks the server cannot) is accepted; c= is then eSws" {
                        let gs2 = "y,,"
                        let bare = "n=alice,r=cn"

                        let state, serverFirst =
                            challenged (started context "SCRAM-SHA-1" (Some(utf8 (gs2 + bare))))

                        let final, _ = scramClientFinal "SCRAM-SHA-1" "secret" gs2 bare (text serverFirst)
                        Expect.stringStarts final "c=eSws," "c="
                        let state, _ = challenged (SaslServer.respond context state (utf8 final))
                        SaslServer.respond context state [||] |> expectSucceeded "alice"
                    }

                    test "channel binding requested (p=) fails and says why" {
                        let reason =
                            started context "SCRAM-SHA-256" (Some(utf8 "p=tls-exporter,,n=alice,r=cn"))
                            |> expectFailed

                        Expect.stringContains reason "channel binding" "reason"
                    }

                    test "a mandatory extension (m=) fails" {
                        started context "SCRAM-SHA-1" (Some(utf8 "n,,m=ext,n=alice,r=cn"))
                        |> expectFailed
                        |> ignore
                    }

                    test "extensions after the nonce are accepted" {
                        let state, _ =
                            challenged (started context "SCRAM-SHA-1" (Some(utf8 "n,,n=alice,r=cn,x=1")))

                        ignore state
                    }

                    test "malformed client-first-messages fail" {
                        for message in
                            [
                                ""
                                "n,,"
                                "n,,n=alice"
                                "n,,r=cn,n=alice"
                                "x,,n=alice,r=cn"
                                "n,b=x,n=alice,r=cn"
                                "n,,n=alice,r="
                                "n,,n=alice,r=c n"
                                "n,,n=alice,r=cn,5"
                                "n,,n=al\000ice,r=cn"
                                "n,n=alice,r=cn"
                                "n=alice,r=cn"
                            ] do
                            started context "SCRAM-SHA-1" (Some(utf8 message)) |> expectFailed |> ignore

                        started context "SCRAM-SHA-1" (Some [| 0x6Euy; 0x2Cuy; 0x2Cuy; 0xFFuy |])
                        |> expectFailed
                        |> ignore
                    }

                    test "malformed client-final-messages fail" {
                        let nonce = "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
                        let proof = "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="

                        for message in
                            [
                                ""
                                "c=biws"
                                $"c=biws,r={nonce}"
                                $"r={nonce},c=biws,p={proof}"
                                // the wrong nonce: the client's part alone, a changed one
                                $"c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p={proof}"
                                $"c=biws,r={nonce}x,p={proof}"
                                // the wrong c=
                                $"c=eSws,r={nonce},p={proof}"
                                $"c=biws=,r={nonce},p={proof}"
                                $"c=,r={nonce},p={proof}"
                                // a bad proof: not base64, not canonical, too short, too long, empty
                                $"c=biws,r={nonce},p=v0X8v3Bz2T0CJGbJQyF0X+HI4T!="
                                $"c=biws,r={nonce},p=v0X8v3Bz2T0CJGbJQyF0X+HI4Tt="
                                $"c=biws,r={nonce},p=v0X8v3Bz2T0CJGbJQyF0X+HI"
                                $"c=biws,r={nonce},p={proof}AAAA"
                                $"c=biws,r={nonce},p= {proof}"
                                $"c=biws,r={nonce},p="
                                $"c=biws,r={nonce},p={proof},x=1"
                                $"c=biws,r={nonce},5,p={proof}"
                                // the right proof, but one bit of the AuthMessage changed
                                $"c=biws,r={nonce},x=1,p={proof}"
                            ] do
                            SaslServer.respond rfc5802Context (rfc5802AfterFirst ()) (utf8 message)
                            |> expectFailed
                            |> ignore
                    }

                    test "another nonce fails even with a proof computed over it" {
                        for nonce in
                            [
                                "fyko+d2lbbFgONRv9qkxdawL"
                                "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7jx"
                                "x"
                            ] do
                            let state, serverFirst =
                                challenged (started rfc5802Context "SCRAM-SHA-1" (Some(utf8 rfc5802First)))

                            let final, _ =
                                scramClientFinalWith
                                    (Some nonce)
                                    "SCRAM-SHA-1"
                                    "pencil"
                                    "n,,"
                                    "n=user,r=fyko+d2lbbFgONRv9qkxdawL"
                                    (text serverFirst)

                            SaslServer.respond rfc5802Context state (utf8 final) |> expectFailed |> ignore
                    }

                    test "an unknown user gets a server-first-message and fails at the proof" {
                        let state, serverFirst =
                            challenged (started context "SCRAM-SHA-256" (Some(utf8 "n,,n=carol,r=cn")))

                        Expect.stringStarts (text serverFirst) "r=cn" "server-first-message"

                        let final, _ =
                            scramClientFinal "SCRAM-SHA-256" "x" "n,," "n=carol,r=cn" (text serverFirst)

                        SaslServer.respond context state (utf8 final) |> expectFailed |> ignore
                    }

                    test "the stored password goes through SASLprep (RFC 5802 §2.2)" {
                        let ctx = contextWith [ "u", "I\u00A0\u00ADX\u2168" ] "srv" (Array.init 8 byte) 4096

                        for mechanism in scramMechanisms do
                            client ctx mechanism "u" "I XIX" "cn" true |> expectSucceeded "u"
                    }

                    test "a stored password SASLprep refuses fails without throwing" {
                        let ctx =
                            contextWith [ "u", "a\u0007b"; "v", "a\uD800b" ] "srv" (Array.init 8 byte) 4096

                        for mechanism in scramMechanisms do
                            client ctx mechanism "u" "a\u0007b" "cn" true |> expectFailed |> ignore
                            client ctx mechanism "v" "ab" "cn" true |> expectFailed |> ignore
                    }

                    test "a misconfigured server (iterations < 1, a nonce with ',') fails without throwing" {
                        for ctx in
                            [
                                { context with ScramIterations = 0 }
                                { context with Nonce = "a,b" }
                                { context with Nonce = "" }
                            ] do
                            started ctx "SCRAM-SHA-1" (Some(utf8 "n,,n=alice,r=cn"))
                            |> expectFailed
                            |> ignore
                    }
                ]

            testList
                "SASLprep"
                [
                    test "the RFC 4013 §3 examples (the bidi one aside)" {
                        Expect.equal (SaslPrep.prepare "I\u00ADX") (Some "IX") "soft hyphen mapped to nothing"
                        Expect.equal (SaslPrep.prepare "user") (Some "user") "no transformation"
                        Expect.equal (SaslPrep.prepare "USER") (Some "USER") "case preserved"
                        Expect.equal (SaslPrep.prepare "\u00AA") (Some "a") "NFKC"
                        Expect.equal (SaslPrep.prepare "\u2168") (Some "IX") "NFKC"
                        Expect.equal (SaslPrep.prepare "\u0007") None "prohibited"
                    }

                    test "spaces map to SPACE; mapped-to-nothing characters go" {
                        Expect.equal (SaslPrep.prepare "a\u00A0b\u3000c\u2003d") (Some "a b c d") "spaces"
                        Expect.equal (SaslPrep.prepare "a\u200Bb\uFEFFc\uFE0Fd\u034F") (Some "abcd") "nothing"
                    }

                    test "prohibited characters and lone surrogates give None" {
                        for s in
                            [
                                "\t"
                                "a\u007F"
                                "\u0085"
                                "\uE000"
                                "\uFFFE"
                                "\uFFFF"
                                "\uFDD0"
                                "\U000F0000"
                                "\U0001FFFE"
                                "\u202E"
                                "\U000E0001"
                                "\u2FF0"
                                "\uFFFD"
                                "a\uD800"
                                "\uDC00a"
                            ] do
                            Expect.equal (SaslPrep.prepare s) None (sprintf "%A" s)
                    }

                    test "prepare does not throw on any single code point" {
                        for c in 0..0x10FFFF do
                            if c < 0xD800 || c > 0xDFFF then
                                SaslPrep.prepare (Char.ConvertFromUtf32 c) |> ignore
                    }

                    testPropertyWithConfig (config 500) "prepare does not throw on any string of UTF-16 code units"
                    <| Prop.forAll (Arb.fromGen genUtf16) (fun s ->
                        match SaslPrep.prepare s with
                        | Some prepared -> prepared.Normalize(NormalizationForm.FormKC) = prepared
                        | None -> true)
                ]

            testList
                "properties"
                [
                    testPropertyWithConfig (config 500) "start then respond with arbitrary octets never throws"
                    <| Prop.forAll
                        (Arb.fromGen (
                            Gen.zip3
                                (Gen.elements (SaslServer.mechanisms @ [ "cram-md5"; "X" ]))
                                (Gen.optionOf genBytes)
                                (Gen.listOf genBytes)
                        ))
                        (fun (mechanism, initial, responses) ->
                            match SaslServer.start context mechanism initial with
                            | Error _ -> mechanism = "X"
                            | Ok step ->
                                let rec go step responses =
                                    match step, responses with
                                    | SaslServerStep.Challenge(state, _), (r: byte[]) :: rest ->
                                        go (SaslServer.respond context state r) rest
                                    | _ -> true

                                go step responses)

                    testPropertyWithConfig (config 300) "a client-final-message with one random edit never throws"
                    <| Prop.forAll (Arb.fromGen (genMutation rfc5802Final)) (fun final ->
                        match SaslServer.respond rfc5802Context (rfc5802AfterFirst ()) (utf8 final) with
                        | SaslServerStep.Challenge _ -> final = rfc5802Final
                        | SaslServerStep.Succeeded _ -> false
                        | SaslServerStep.Failed _ -> final <> rfc5802Final)

                    testPropertyWithConfig (config 300) "a client-first-message with one random edit never throws"
                    <| Prop.forAll (Arb.fromGen (genMutation "n,a=user,n=user,r=fyko,x=1")) (fun first ->
                        match SaslServer.start rfc5802Context "SCRAM-SHA-256" (Some(utf8 first)) with
                        | Ok(SaslServerStep.Challenge _)
                        | Ok(SaslServerStep.Failed _) -> true
                        | _ -> false)

                    testPropertyWithConfig
                        (config 50)
                        "a correct SCRAM client succeeds with random users, passwords, nonces, salts and counts"
                    <| Prop.forAll
                        (Arb.fromGen (
                            gen {
                                let! mechanism = Gen.elements scramMechanisms
                                let! user = genPrintable
                                let! password = genStablePassword
                                let! clientNonce = genNonce
                                let! serverNonce = genNonce
                                let! salt = Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte)
                                let! iterations = Gen.choose (1, 5000)
                                let! initial = Gen.elements [ true; false ]
                                return mechanism, user, password, clientNonce, serverNonce, salt, iterations, initial
                            }
                        ))
                        (fun (mechanism, user, password, clientNonce, serverNonce, salt, iterations, initial) ->
                            let ctx = contextWith [ user, password ] serverNonce salt iterations

                            match client ctx mechanism user password clientNonce initial with
                            | SaslServerStep.Succeeded u -> u = user
                            | _ -> false)

                    testPropertyWithConfig
                        (config 200)
                        "a correct PLAIN, LOGIN or CRAM-MD5 client succeeds with random printable credentials"
                    <| Prop.forAll
                        (Arb.fromGen (
                            gen {
                                let! mechanism = Gen.elements [ "PLAIN"; "LOGIN"; "CRAM-MD5" ]
                                let! user = genPrintable
                                let! password = genPrintable
                                let! initial = Gen.elements [ true; false ]
                                return mechanism, user, password, initial
                            }
                        ))
                        (fun (mechanism, user, password, initial) ->
                            let ctx = contextWith [ user, password ] "0123456789abcdef" [||] 1
                            let initial = initial && mechanism <> "CRAM-MD5"

                            match client ctx mechanism user password "" initial with
                            | SaslServerStep.Succeeded u -> u = user
                            | _ -> false)

                    testPropertyWithConfig (config 100) "a password off by one character fails with every mechanism"
                    <| Prop.forAll
                        (Arb.fromGen (Gen.zip3 (Gen.elements SaslServer.mechanisms) genPrintable genPrintable))
                        (fun (mechanism, user, password) ->
                            let ctx = contextWith [ user, password ] "0123456789abcdef" (Array.init 8 byte) 64

                            match client ctx mechanism user (password + "x") "cn" false with
                            | SaslServerStep.Failed _ -> true
                            | _ -> false)
                ]
        ]
