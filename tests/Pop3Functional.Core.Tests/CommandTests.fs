module Pop3Functional.Core.Tests.CommandTests

open System
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Pop3Functional.Core

/// RFC 2449 §4: a command line is at most 255 octets, CRLF included.
let private limit = 255

let private secret (s: string) = Secret.FromString s

let private wire (c: EncodedCommand) =
    Encoding.UTF8.GetString(c.Bytes.ToArray())

let private encodeOk (request: Request) =
    match Command.encode limit request with
    | Ok c -> c
    | Error e -> failtestf "%A was refused: %s" request e.Message

let private expectRefused (what: string) (kind: UsageErrorKind) (result: Result<EncodedCommand, UsageError>) =
    match result with
    | Ok c -> failtestf "%s: expected a %A refusal, got bytes %A" what kind (wire c)
    | Error e -> Expect.equal e.Kind kind $"{what}: the refusal kind ({e.Message})"

/// The RFC 1939 §7 APOP example.
let private rfcTimestamp = "<1896.697170952@dbc.mtview.ca.us>"
let private rfcDigest = "c4c9334bac560ecc979e58001b3e22fb"

/// A test-side command-line parser: "keyword SP args" without CRLF.
let private parseLine (line: string) =
    match line.Split ' ' |> List.ofArray with
    | keyword :: args -> keyword, args
    | [] -> "", []

/// Known answers: the request, the exact line sent and its LogText.
let private knownAnswers: (string * Request * string * string) list =
    [
        "USER (RFC 1939 §7)", Request.User "mrose", "USER mrose\r\n", "USER mrose"
        "PASS (RFC 1939 §7)", Request.Pass(secret "tanstaaf"), "PASS tanstaaf\r\n", "PASS ********"
        "PASS with spaces (RFC 1939 §7 allows them)",
        Request.Pass(secret "my secret pw"),
        "PASS my secret pw\r\n",
        "PASS ********"
        "RPOP (RFC 1081)", Request.Rpop "mrose", "RPOP mrose\r\n", "RPOP mrose"
        "STAT (RFC 1939 §5)", Request.Stat, "STAT\r\n", "STAT"
        "LIST (RFC 1939 §5)", Request.List None, "LIST\r\n", "LIST"
        "LIST n (RFC 1939 §5)", Request.List(Some 2UL), "LIST 2\r\n", "LIST 2"
        "RETR (RFC 1939 §5)", Request.Retr 1UL, "RETR 1\r\n", "RETR 1"
        "RETR a 64-bit number",
        Request.Retr UInt64.MaxValue,
        "RETR 18446744073709551615\r\n",
        "RETR 18446744073709551615"
        "DELE (RFC 1939 §5)", Request.Dele 1UL, "DELE 1\r\n", "DELE 1"
        "NOOP (RFC 1939 §5)", Request.Noop, "NOOP\r\n", "NOOP"
        "RSET (RFC 1939 §5)", Request.Rset, "RSET\r\n", "RSET"
        "QUIT (RFC 1939 §6)", Request.Quit, "QUIT\r\n", "QUIT"
        "TOP n m (RFC 1939 §7)", Request.Top(1UL, 10UL), "TOP 1 10\r\n", "TOP 1 10"
        "TOP n 0 (headers only, RFC 1939 §7)", Request.Top(3UL, 0UL), "TOP 3 0\r\n", "TOP 3 0"
        "UIDL (RFC 1939 §7)", Request.Uidl None, "UIDL\r\n", "UIDL"
        "UIDL n (RFC 1939 §7)", Request.Uidl(Some 2UL), "UIDL 2\r\n", "UIDL 2"
        "CAPA (RFC 2449 §5)", Request.Capa, "CAPA\r\n", "CAPA"
        "STLS (RFC 2595 §4)", Request.Stls, "STLS\r\n", "STLS"
        "UTF8 (RFC 6856 §2)", Request.Utf8, "UTF8\r\n", "UTF8"
        "LANG (RFC 6856 §3)", Request.Lang None, "LANG\r\n", "LANG"
        "LANG tag (RFC 6856 §3)", Request.Lang(Some "en-boont"), "LANG en-boont\r\n", "LANG en-boont"
        "LANG * (RFC 6856 §3)", Request.Lang(Some "*"), "LANG *\r\n", "LANG *"
        "AUTH mech (RFC 5034 §4)", Request.Auth("CRAM-MD5", None), "AUTH CRAM-MD5\r\n", "AUTH CRAM-MD5"
        "AUTH PLAIN with initial response (RFC 5034 §4 example)",
        Request.Auth("PLAIN", Some(secret "test\000test\000test")),
        "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n",
        "AUTH PLAIN ********"
        "AUTH with an empty initial response sends '=' (RFC 5034 §4)",
        Request.Auth("EXTERNAL", Some(secret "")),
        "AUTH EXTERNAL =\r\n",
        "AUTH EXTERNAL ********"
        "AUTH lowercase mechanism kept as given", Request.Auth("xoauth2", None), "AUTH xoauth2\r\n", "AUTH xoauth2"
        "USER with UTF-8 name (RFC 6856 UTF8 USER)", Request.User "jösé", "USER jösé\r\n", "USER jösé"
    ]

let private bad = [ "\r"; "\n"; "\000"; "\r\n" ]

/// Every argument position that takes a string, as a function from the argument to an encoding.
let private stringPositions: (string * (string -> Result<EncodedCommand, UsageError>)) list =
    [
        "USER name", (fun s -> Command.encode limit (Request.User s))
        "RPOP user", (fun s -> Command.encode limit (Request.Rpop s))
        "PASS password", (fun s -> Command.encode limit (Request.Pass(secret s)))
        "APOP name", (fun s -> Command.apop limit rfcTimestamp s (secret "tanstaaf"))
        "APOP secret", (fun s -> Command.apop limit rfcTimestamp "mrose" (secret s))
        "LANG tag", (fun s -> Command.encode limit (Request.Lang(Some s)))
        "AUTH mechanism", (fun s -> Command.encode limit (Request.Auth(s, None)))
        "AUTH mechanism (with initial response)", (fun s -> Command.encode limit (Request.Auth(s, Some(secret "ir"))))
    ]

// ---- generators for the properties ----

let private tokenChar =
    Gen.frequency
        [
            9, Gen.choose (0x21, 0x7E) |> Gen.map char
            1, Gen.elements [ 'é'; 'ß'; 'Ж'; '€' ]
        ]

let private genToken =
    gen {
        let! n = Gen.choose (1, 40)
        let! cs = Gen.arrayOfLength n tokenChar
        return String cs
    }

let private genMechanism =
    gen {
        let! n = Gen.choose (1, 20)

        let! cs =
            Gen.arrayOfLength n (Gen.elements ([ 'A' .. 'Z' ] @ [ 'a' .. 'z' ] @ [ '0' .. '9' ] @ [ '-'; '_' ]))

        return String cs
    }

let private genLanguage =
    gen {
        let! n = Gen.choose (1, 20)

        let! cs =
            Gen.arrayOfLength n (Gen.elements ([ 'a' .. 'z' ] @ [ 'A' .. 'Z' ] @ [ '0' .. '9' ] @ [ '-'; '*' ]))

        return String cs
    }

let private genPassword =
    gen {
        let! n = Gen.choose (1, 60)
        // Spaces are legal in PASS (RFC 1939 §7).
        let! cs = Gen.arrayOfLength n (Gen.frequency [ 8, tokenChar; 1, Gen.constant ' ' ])
        return String cs
    }

let private genNumber =
    Gen.frequency
        [
            5, Gen.choose (1, 1000) |> Gen.map uint64
            1, Gen.elements [ 1UL; 2147483647UL; 2147483648UL; UInt64.MaxValue ]
        ]

let private genIr =
    gen {
        let! n = Gen.choose (0, 100)
        let! bs = Gen.arrayOfLength n (Gen.choose (0, 255) |> Gen.map byte)
        return bs
    }

/// A valid request (APOP included, encoded with the RFC timestamp) and the keyword and arguments
/// the line must parse back to.
type private Case =
    {
        Encoded: Result<EncodedCommand, UsageError>
        Keyword: string
        Args: string list
        Ir: byte[] option
    }

let private case request keyword args =
    {
        Encoded = Command.encode limit request
        Keyword = keyword
        Args = args
        Ir = None
    }

let private genCase =
    Gen.oneof
        [
            genToken |> Gen.map (fun u -> case (Request.User u) "USER" [ u ])
            genToken |> Gen.map (fun u -> case (Request.Rpop u) "RPOP" [ u ])
            genPassword
            |> Gen.map (fun p -> case (Request.Pass(secret p)) "PASS" (List.ofArray (p.Split ' ')))
            Gen.map2
                (fun u p ->
                    {
                        Encoded = Command.apop limit rfcTimestamp u (secret p)
                        Keyword = "APOP"
                        Args = [ u; Command.apopDigest rfcTimestamp (secret p) ]
                        Ir = None
                    })
                genToken
                genPassword
            Gen.elements
                [
                    Request.Stat, "STAT"
                    Request.Noop, "NOOP"
                    Request.Rset, "RSET"
                    Request.Quit, "QUIT"
                    Request.Capa, "CAPA"
                    Request.Stls, "STLS"
                    Request.Utf8, "UTF8"
                    Request.List None, "LIST"
                    Request.Uidl None, "UIDL"
                    Request.Lang None, "LANG"
                ]
            |> Gen.map (fun (r, k) -> case r k [])
            genNumber |> Gen.map (fun n -> case (Request.List(Some n)) "LIST" [ string n ])
            genNumber |> Gen.map (fun n -> case (Request.Uidl(Some n)) "UIDL" [ string n ])
            genNumber |> Gen.map (fun n -> case (Request.Retr n) "RETR" [ string n ])
            genNumber |> Gen.map (fun n -> case (Request.Dele n) "DELE" [ string n ])
            Gen.map2
                (fun n m -> case (Request.Top(n, m)) "TOP" [ string n; string m ])
                genNumber
                (Gen.oneof [ Gen.constant 0UL; genNumber ])
            genLanguage |> Gen.map (fun t -> case (Request.Lang(Some t)) "LANG" [ t ])
            genMechanism |> Gen.map (fun m -> case (Request.Auth(m, None)) "AUTH" [ m ])
            Gen.map2
                (fun m (ir: byte[]) ->
                    { case (Request.Auth(m, Some(Secret.FromBytes(ReadOnlySpan ir)))) "AUTH" [ m ] with
                        Ir = Some ir
                    })
                genMechanism
                genIr
        ]

/// A string holding at least one CR, LF or NUL somewhere.
let private genInjection =
    gen {
        let! prefix = Gen.oneof [ Gen.constant ""; genToken ]
        let! badChar = Gen.elements [ '\r'; '\n'; '\000' ]
        let! suffix = Gen.oneof [ Gen.constant ""; genToken; Gen.constant "\r\nDELE 1" ]
        return prefix + string badChar + suffix
    }

let private propConfig n =
    { FsCheckConfig.defaultConfig with
        maxTest = n
    }

[<Tests>]
let tests =
    testList
        "CommandTests"
        [
            testList
                "known answers"
                [
                    for name, request, line, log in knownAnswers do
                        testCase name
                        <| fun () ->
                            let c = encodeOk request
                            Expect.equal (wire c) line "exact bytes on the wire"
                            Expect.equal c.LogText log "LogText"
                ]

            testCase "APOP: the RFC 1939 §7 example digest"
            <| fun () ->
                Expect.equal (Command.apopDigest rfcTimestamp (secret "tanstaaf")) rfcDigest "MD5(timestamp + secret)"

            testCase "APOP: the RFC 1939 §7 example line, digest redacted in LogText"
            <| fun () ->
                match Command.apop limit rfcTimestamp "mrose" (secret "tanstaaf") with
                | Ok c ->
                    Expect.equal (wire c) $"APOP mrose {rfcDigest}\r\n" "exact bytes"
                    Expect.equal c.LogText "APOP mrose ********" "LogText"
                | Error e -> failtest e.Message

            testCase "APOP through encode is refused: it needs the greeting's timestamp"
            <| fun () ->
                Command.encode limit (Request.Apop("mrose", secret "tanstaaf"))
                |> expectRefused "APOP" UsageErrorKind.ApopUnavailable

            testCase "the encoded bytes are ASCII for ASCII arguments and UTF-8 otherwise"
            <| fun () ->
                let c = encodeOk (Request.User "jösé")
                Expect.equal (c.Bytes.ToArray()) (Encoding.UTF8.GetBytes "USER jösé\r\n") "UTF-8 bytes"

            testList
                "SASL continuation lines (RFC 5034 §4)"
                [
                    testCase "a response is base64 and redacted"
                    <| fun () ->
                        match Command.saslLine (Some(Encoding.ASCII.GetBytes "tim tanstaaftanstaaf")) with
                        | Ok c ->
                            Expect.equal (wire c) "dGltIHRhbnN0YWFmdGFuc3RhYWY=\r\n" "base64 + CRLF"
                            Expect.equal c.LogText "********" "LogText"
                        | Error e -> failtest e.Message
                    testCase "'*' cancels the exchange"
                    <| fun () ->
                        match Command.saslLine None with
                        | Ok c ->
                            Expect.equal (wire c) "*\r\n" "cancel line"
                            Expect.equal c.LogText "*" "LogText"
                        | Error e -> failtest e.Message
                    testCase "an empty response is an empty line (the '=' form is for the initial response only)"
                    <| fun () ->
                        match Command.saslLine (Some [||]) with
                        | Ok c ->
                            Expect.equal (wire c) "\r\n" "empty line"
                            Expect.equal c.LogText "********" "LogText"
                        | Error e -> failtest e.Message
                    testCase "a continuation line is not bound by the 255-octet command limit"
                    <| fun () ->
                        let payload = Array.create 3000 (byte 'x')

                        match Command.saslLine (Some payload) with
                        | Ok c -> Expect.equal (wire c) (Convert.ToBase64String payload + "\r\n") "long base64 line"
                        | Error e -> failtest e.Message
                ]

            testList
                "secrets never appear in LogText"
                [
                    let canary = "Canary-Pw-7f3a"
                    let b64 = Convert.ToBase64String(Encoding.UTF8.GetBytes canary)

                    let check name (result: Result<EncodedCommand, UsageError>) (hidden: string list) =
                        testCase name
                        <| fun () ->
                            match result with
                            | Ok c ->
                                for h in hidden do
                                    Expect.isFalse (c.LogText.Contains h) $"LogText {c.LogText} reveals {h}"
                                    Expect.stringContains (wire c) h "the wire does carry it"
                            | Error e -> failtest e.Message

                    check "PASS" (Command.encode limit (Request.Pass(secret canary))) [ canary ]

                    check
                        "APOP digest"
                        (Command.apop limit rfcTimestamp "mrose" (secret canary))
                        [ Command.apopDigest rfcTimestamp (secret canary) ]

                    check
                        "AUTH initial response"
                        (Command.encode limit (Request.Auth("PLAIN", Some(secret canary))))
                        [ b64 ]

                    check "SASL continuation" (Command.saslLine (Some(Encoding.UTF8.GetBytes canary))) [ b64 ]
                ]

            testList
                "CR, LF and NUL are refused in every string argument"
                [
                    for position, encode in stringPositions do
                        for b in bad do
                            testCase (sprintf "%s with \"%s\"" position (Bytes.escapeControls ("ab" + b + "cd")))
                            <| fun () ->
                                encode ("ab" + b + "cd")
                                |> expectRefused position UsageErrorKind.InvalidArgument
                ]

            testList
                "empty arguments are refused"
                [
                    for position, encode in stringPositions do
                        testCase position
                        <| fun () -> encode "" |> expectRefused position UsageErrorKind.InvalidArgument
                ]

            testList
                "spaces in user names are refused (RFC 1939 §7: arguments are separated by a space)"
                [
                    for position, encode in
                        stringPositions
                        |> List.take 4
                        |> List.filter (fun (p, _) -> p <> "PASS password") do
                        for name in [ "john smith"; " leading"; "trailing "; "tab\there" ] do
                            testCase (sprintf "%s \"%s\"" position (Bytes.escapeControls name))
                            <| fun () -> encode name |> expectRefused position UsageErrorKind.InvalidArgument
                ]

            testList
                "malformed mechanisms and language tags are refused"
                [
                    for what, result in
                        [
                            "AUTH with '!'", Command.encode limit (Request.Auth("PLAIN!", None))
                            "AUTH of 21 characters (RFC 4422 §3.1)",
                            Command.encode limit (Request.Auth(String('A', 21), None))
                            "AUTH with a space", Command.encode limit (Request.Auth("PLAIN X", None))
                            "LANG with '_'", Command.encode limit (Request.Lang(Some "en_US"))
                            "LANG with a space", Command.encode limit (Request.Lang(Some "en US"))
                        ] do
                        testCase what
                        <| fun () -> result |> expectRefused what UsageErrorKind.InvalidArgument

                    testCase "AUTH of exactly 20 characters is accepted (RFC 4422 §3.1)"
                    <| fun () -> encodeOk (Request.Auth(String('A', 20), None)) |> ignore
                ]

            testList
                "message number 0 is refused (RFC 1939 §3: numbers start at 1)"
                [
                    for name, request in
                        [
                            "LIST 0", Request.List(Some 0UL)
                            "UIDL 0", Request.Uidl(Some 0UL)
                            "RETR 0", Request.Retr 0UL
                            "DELE 0", Request.Dele 0UL
                            "TOP 0 5", Request.Top(0UL, 5UL)
                        ] do
                        testCase name
                        <| fun () -> Command.encode limit request |> expectRefused name UsageErrorKind.NoSuchMessage
                ]

            testList
                "the 255-octet command limit, CRLF included (RFC 2449 §4)"
                [ // "USER " is 5 octets and CRLF 2, so a 248-character name makes exactly 255.
                    testCase "USER line of exactly 255 octets is accepted"
                    <| fun () ->
                        let c = encodeOk (Request.User(String('u', 248)))
                        Expect.equal c.Bytes.Length 255 "255 octets"
                    testCase "USER line of 256 octets is refused"
                    <| fun () ->
                        Command.encode limit (Request.User(String('u', 249)))
                        |> expectRefused "USER" UsageErrorKind.CommandTooLong
                    testCase "PASS line of exactly 255 octets is accepted"
                    <| fun () ->
                        let c = encodeOk (Request.Pass(secret (String('p', 248))))
                        Expect.equal c.Bytes.Length 255 "255 octets"
                    testCase "PASS line of 256 octets is refused"
                    <| fun () ->
                        Command.encode limit (Request.Pass(secret (String('p', 249))))
                        |> expectRefused "PASS" UsageErrorKind.CommandTooLong
                    testCase "the limit counts UTF-8 octets, not characters"
                    <| fun () ->
                        // 124 two-octet characters = 248 octets (fits); 125 = 250 (does not).
                        Expect.equal (encodeOk (Request.User(String('é', 124)))).Bytes.Length 255 "255 octets"

                        Command.encode limit (Request.User(String('é', 125)))
                        |> expectRefused "USER" UsageErrorKind.CommandTooLong
                    testCase "AUTH with an initial response over the limit is refused"
                    <| fun () ->
                        // "AUTH PLAIN " is 11 octets; 180 bytes of IR are 240 base64 characters: 253 octets.
                        let fits = Secret.FromBytes(ReadOnlySpan(Array.create 180 1uy))
                        let tooBig = Secret.FromBytes(ReadOnlySpan(Array.create 183 1uy))
                        Expect.equal (encodeOk (Request.Auth("PLAIN", Some fits))).Bytes.Length 253 "253 octets"

                        Command.encode limit (Request.Auth("PLAIN", Some tooBig))
                        |> expectRefused "AUTH" UsageErrorKind.CommandTooLong
                    testCase "the limit parameter is honoured"
                    <| fun () ->
                        Expect.isOk (Command.encode 12 (Request.User "abcde")) "USER abcde CRLF is 12 octets"

                        Command.encode 11 (Request.User "abcde")
                        |> expectRefused "USER" UsageErrorKind.CommandTooLong
                ]

            testCase "a refusal names the command"
            <| fun () ->
                match Command.encode limit (Request.User "a\r\nDELE 1") with
                | Error e ->
                    Expect.equal e.Command "USER" "Command"
                    Expect.isNonEmpty e.Message "Message"
                | Ok _ -> failtest "accepted an injection"

            testPropertyWithConfig
                (propConfig 1000)
                "encode → decode round trip: CRLF once, at the end, and the same keyword and arguments"
            <| Prop.forAll (Arb.fromGen genCase) (fun case ->
                match case.Encoded with
                | Error e -> failtestf "refused a valid request: %s" e.Message
                | Ok c ->
                    let bytes = c.Bytes.ToArray()
                    Expect.isGreaterThanOrEqual bytes.Length 2 "at least CRLF"
                    Expect.isLessThanOrEqual bytes.Length limit "within the limit"
                    Expect.equal bytes[bytes.Length - 2 ..] [| 13uy; 10uy |] "ends in CRLF"

                    Expect.isFalse
                        (bytes[.. bytes.Length - 3]
                         |> Array.exists (fun b -> b = 13uy || b = 10uy || b = 0uy))
                        "no other CR, LF or NUL"

                    let line = Encoding.UTF8.GetString bytes[.. bytes.Length - 3]
                    let keyword, args = parseLine line
                    Expect.equal keyword case.Keyword "keyword"

                    match case.Ir with
                    | None -> Expect.equal args case.Args "arguments"
                    | Some ir ->
                        match args with
                        | [ mech; payload ] ->
                            Expect.equal [ mech ] case.Args "mechanism"

                            let decoded =
                                if payload = "=" then
                                    [||]
                                else
                                    Convert.FromBase64String payload

                            Expect.equal decoded ir "initial response"
                        | _ -> failtestf "AUTH line %s" line)

            testPropertyWithConfig (propConfig 300) "a string with CR, LF or NUL is refused in every argument position"
            <| Prop.forAll (Arb.fromGen genInjection) (fun s ->
                for position, encode in stringPositions do
                    match encode s with
                    | Ok c -> failtestf "%s accepted %A and produced %A" position s (wire c)
                    | Error e -> Expect.equal e.Kind UsageErrorKind.InvalidArgument position)
        ]
