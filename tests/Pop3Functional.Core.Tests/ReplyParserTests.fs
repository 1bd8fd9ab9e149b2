module Pop3Functional.Core.Tests.ReplyParserTests

open System
open System.Diagnostics
open System.Globalization
open System.Text
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Pop3Functional.Core

let private latin1 (s: string) = Encoding.Latin1.GetBytes s

/// Every quirk tolerated (LongUids included), and none.
let private all = Set.ofList Quirk.All
let private none: Set<Quirk> = Set.empty

let private show (s: string) = "\"" + Bytes.escapeControls s + "\""

let private status quirks (s: string) =
    ReplyParser.statusLine quirks false (ReadOnlySpan(latin1 s))

let private stat quirks (s: string) =
    ReplyParser.stat quirks (ReadOnlySpan(latin1 s))

let private list quirks (s: string) =
    ReplyParser.listEntry quirks (ReadOnlySpan(latin1 s))

let private uid quirks (s: string) =
    ReplyParser.uidEntry quirks (ReadOnlySpan(latin1 s))

let private isCont (s: string) =
    ReplyParser.isContinuation (ReadOnlySpan(latin1 s))

let private number (s: string) =
    match ReplyParser.tryParseNumber (ReadOnlySpan(latin1 s)) with
    | ValueSome v -> Some v
    | ValueNone -> None

let private expectOk what (parsed: Parsed<'T>) : 'T * Quirk list =
    match parsed with
    | Ok(struct (v, q)) -> v, q
    | Error(struct (kind, reason)) -> failtestf "%s: expected success, got %A: %s" what kind reason

let private expectError what (kind: ProtocolErrorKind) (parsed: Parsed<'T>) =
    match parsed with
    | Ok(struct (v, q)) -> failtestf "%s: expected %A, got %A with quirks %A" what kind v q
    | Error(struct (k, reason)) ->
        Expect.equal k kind $"{what}: error kind"
        Expect.isNonEmpty reason $"{what}: a reason is given"

let private caps (lines: string list) =
    lines |> List.fold ReplyParser.capabilityLine Capabilities.Empty

/// Runs work on the thread pool and fails (instead of hanging) when it takes longer than the budget.
let private within (seconds: float) (what: string) (work: unit -> 'T) : 'T =
    let task = Task.Run<'T>(Func<'T>(work))

    if not (task.Wait(TimeSpan.FromSeconds seconds)) then
        failtestf "%s did not finish within %.0f s: not linear time" what seconds

    task.Result

let private propConfig n =
    { FsCheckConfig.defaultConfig with
        maxTest = n
    }

// ---- generators ----

let private genDigits =
    gen {
        let! n = Gen.choose (1, 30)
        let! zeros = Gen.choose (0, n - 1)
        let! rest = Gen.arrayOfLength (n - zeros) (Gen.elements [ '0' .. '9' ])
        return String('0', zeros) + String rest
    }

let private genNonNumber =
    gen {
        let! digits = genDigits
        let! at = Gen.choose (0, digits.Length)

        let! c =
            Gen.oneof
                [
                    Gen.elements [ ' '; '-'; '+'; 'x'; 'a'; '.'; ','; '/'; ':'; '\000'; '\r'; '٣'; '８' ]
                    Gen.choose (0, 255) |> Gen.map char |> Gen.filter (fun c -> c < '0' || c > '9')
                ]

        return digits.Insert(at, string c)
    }

let private known =
    [
        ResponseCode.InUse
        ResponseCode.LoginDelay
        ResponseCode.SysTemp
        ResponseCode.SysPerm
        ResponseCode.Auth
        ResponseCode.Utf8
    ]

let private genLevel =
    gen {
        let! n = Gen.choose (1, 10)

        let! cs =
            Gen.arrayOfLength n (Gen.elements ([ 'A' .. 'Z' ] @ [ 'a' .. 'z' ] @ [ '0' .. '9' ] @ [ '-' ]))

        return String cs
    }

let private genCode =
    Gen.oneof
        [
            Gen.elements known
            gen {
                let! n = Gen.choose (1, 3)
                let! levels = Gen.listOfLength n genLevel
                return String.Join("/", levels)
            }
            |> Gen.filter (fun s ->
                known
                |> List.forall (fun k -> not (k.Text.Equals(s, StringComparison.OrdinalIgnoreCase))))
            |> Gen.map ResponseCode.Other
        ]

let private genText =
    gen {
        let! n = Gen.choose (0, 60)
        let! cs = Gen.arrayOfLength n (Gen.choose (0x20, 0x7E) |> Gen.map char)
        return String cs
    }

let private genBytes =
    gen {
        let! n = Gen.choose (0, 300)

        let! bs =
            Gen.arrayOfLength
                n
                (Gen.frequency
                    [
                        6, Gen.choose (0, 255) |> Gen.map byte
                        3, Gen.elements (latin1 "+-OKERR []/<>@ 0123456789.\r\n")
                    ])

        return bs
    }

let private noThrow (name: string) (parse: byte[] -> unit) =
    testPropertyWithConfig (propConfig 1000) $"{name} never throws on arbitrary bytes"
    <| fun (bytes: byte[]) ->
        let bytes = if isNull bytes then [||] else bytes
        parse bytes

let private noThrowBiased (name: string) (parse: byte[] -> unit) =
    testPropertyWithConfig (propConfig 1000) $"{name} never throws on protocol-flavoured bytes"
    <| Prop.forAll (Arb.fromGen genBytes) (fun bytes -> parse bytes)

let private longUid = String('u', 70)

[<Tests>]
let tests =
    testList
        "ReplyParserTests"
        [
            testList
                "statusLine (RFC 1939 §3, RFC 2449 §8)"
                [
                    for line, isOk, code, text in
                        [
                            "+OK maildrop has 2 messages", true, None, "maildrop has 2 messages"
                            "-ERR permission denied", false, None, "permission denied"
                            "+OK [IN-USE] x", true, Some ResponseCode.InUse, "x"
                            "-ERR [IN-USE] Do you have another POP session running?",
                            false,
                            Some ResponseCode.InUse,
                            "Do you have another POP session running?"
                            "-ERR [LOGIN-DELAY] wait 15 minutes", false, Some ResponseCode.LoginDelay, "wait 15 minutes"
                            "-ERR [SYS/TEMP] try later", false, Some ResponseCode.SysTemp, "try later"
                            "-ERR [SYS/PERM] mailbox gone", false, Some ResponseCode.SysPerm, "mailbox gone"
                            "-ERR [AUTH] bad password", false, Some ResponseCode.Auth, "bad password"
                            "-ERR [UTF8] needs UTF8", false, Some ResponseCode.Utf8, "needs UTF8"
                            "-ERR [auth] lowercase code", false, Some ResponseCode.Auth, "lowercase code"
                            "-ERR [X-FOO] unknown code kept",
                            false,
                            Some(ResponseCode.Other "X-FOO"),
                            "unknown code kept"
                            "-ERR [SYS/TEMP/FOO] deeper level",
                            false,
                            Some(ResponseCode.Other "SYS/TEMP/FOO"),
                            "deeper level"
                            "-ERR [IN-USE]", false, Some ResponseCode.InUse, ""
                            "-ERR [IN-USE]no space", false, Some ResponseCode.InUse, "no space"
                            "-ERR [SYS//TEMP] empty level", false, None, "[SYS//TEMP] empty level"
                            "-ERR [] empty code", false, None, "[] empty code"
                            "-ERR [IN USE] space in code", false, None, "[IN USE] space in code"
                            "-ERR [IN-USE unterminated", false, None, "[IN-USE unterminated"
                            "+OK text [IN-USE] not at the start", true, None, "text [IN-USE] not at the start"
                            "+OK  two spaces", true, None, " two spaces"
                            "+OK a\tb\001c", true, None, "a\tb\001c"
                        ] do
                        testCase (show line)
                        <| fun () ->
                            let v, q = status none line |> expectOk line
                            Expect.equal v.IsOk isOk "IsOk"
                            Expect.equal v.Code code "Code"
                            Expect.equal v.Text text "Text"
                            Expect.isEmpty q "no quirk needed"

                    for line in
                        [
                            "+ERR oops"
                            "+OKAY"
                            "+OKAY fine"
                            "OK"
                            ""
                            "-ER"
                            "+"
                            " +OK x"
                            "-ERRor"
                            "* OK"
                        ] do
                        testCase $"{show line} is not a status line"
                        <| fun () -> status all line |> expectError line ProtocolErrorKind.BadStatusLine

                    testCase "lowercase +ok is refused without the quirk"
                    <| fun () -> status none "+ok fine" |> expectError "+ok" ProtocolErrorKind.BadStatusLine
                    testCase "lowercase -err is refused without the quirk"
                    <| fun () -> status none "-err nope" |> expectError "-err" ProtocolErrorKind.BadStatusLine
                    testCase "lowercase +ok is accepted with LowercaseStatus and reports it"
                    <| fun () ->
                        let v, q = status (set [ Quirk.LowercaseStatus ]) "+ok fine" |> expectOk "+ok"
                        Expect.isTrue v.IsOk "IsOk"
                        Expect.equal v.Text "fine" "Text"
                        Expect.equal q [ Quirk.LowercaseStatus ] "quirk reported"
                    testCase "mixed-case -Err is accepted with LowercaseStatus and reports it"
                    <| fun () ->
                        let v, q =
                            status (set [ Quirk.LowercaseStatus ]) "-Err [in-use] x" |> expectOk "-Err"

                        Expect.isFalse v.IsOk "IsOk"
                        Expect.equal v.Code (Some ResponseCode.InUse) "Code"
                        Expect.equal q [ Quirk.LowercaseStatus ] "quirk reported"
                    testCase "+OK with no text is legal even without EmptyStatusText (DESIGN §12)"
                    <| fun () ->
                        let v, _ = status none "+OK" |> expectOk "+OK"
                        Expect.isTrue v.IsOk "IsOk"
                        Expect.equal v.Text "" "Text"
                    testCase "+OK with no text reports EmptyStatusText (RFC 1939 §5 NOOP example)"
                    <| fun () ->
                        let v, q = status (set [ Quirk.EmptyStatusText ]) "+OK" |> expectOk "+OK"
                        Expect.isTrue v.IsOk "IsOk"
                        Expect.equal v.Text "" "Text"
                        Expect.equal q [ Quirk.EmptyStatusText ] "quirk reported"
                    testCase "-ERR with no text reports EmptyStatusText"
                    <| fun () ->
                        let v, q = status (set [ Quirk.EmptyStatusText ]) "-ERR" |> expectOk "-ERR"
                        Expect.isFalse v.IsOk "IsOk"
                        Expect.equal q [ Quirk.EmptyStatusText ] "quirk reported"
                    testCase "bare +ok reports both quirks"
                    <| fun () ->
                        let _, q = status all "+ok" |> expectOk "+ok"
                        Expect.equal (set q) (set [ Quirk.EmptyStatusText; Quirk.LowercaseStatus ]) "both quirks"
                    testCase "text is UTF-8 in UTF8 mode and Latin-1 otherwise (RFC 6856)"
                    <| fun () ->
                        let bytes = Encoding.UTF8.GetBytes "+OK héllo"

                        match ReplyParser.statusLine none true (ReadOnlySpan bytes) with
                        | Ok(struct (v, _)) -> Expect.equal v.Text "héllo" "UTF-8"
                        | Error _ -> failtest "UTF-8 status refused"

                        match ReplyParser.statusLine none false (ReadOnlySpan bytes) with
                        | Ok(struct (v, _)) -> Expect.equal v.Text "hÃ©llo" "Latin-1: one char per byte"
                        | Error _ -> failtest "Latin-1 status refused"
                ]

            testList
                "isContinuation (RFC 5034 §4)"
                [
                    for line, expected in
                        [
                            "+", true
                            "+ ", true
                            "+ abc", true
                            "+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+", true
                            "+OK", false
                            "+OK go on", false
                            "+abc", false
                            "-ERR", false
                            "", false
                            " +", false
                        ] do
                        testCase $"{show line} -> {expected}"
                        <| fun () -> Expect.equal (isCont line) expected "isContinuation"
                ]

            testList
                "apopTimestamp (RFC 1939 §7; CVE-2007-1558)"
                [
                    let rfc = "<1896.697170952@dbc.mtview.ca.us>"

                    for greeting, expected in
                        [
                            $"POP3 server ready {rfc}", Some rfc
                            $"{rfc} at the start (MailKit#529)", Some rfc
                            $"in {rfc} the middle", Some rfc
                            "<a@b>", Some "<a@b>"
                            "ready <1@x> <2@y>", Some "<1@x>"
                            "ready <bad> then <good@x>", Some "<good@x>"
                            "a '<' left open before <a@b> makes it ambiguous", None
                            "no timestamp at all", None
                            "no at sign <1896.697170952>", None
                            "two at signs <a@b@c>", None
                            "empty local part <@b>", None
                            "empty domain <a@>", None
                            "control character <a\001b@c>", None
                            "tab <a\tb@c>", None
                            "space <a b@c>", None
                            "DEL <a\127b@c>", None
                            "non-ASCII <jösé@example.com>", None
                            "nested angle inside <a<b>@c>", None
                            "open without close <1896.697170952@dbc.mtview.ca.us", None
                            "close without open 1896@dbc>", None
                            "empty <>", None
                        ] do
                        testCase (show greeting)
                        <| fun () -> Expect.equal (ReplyParser.apopTimestamp greeting) expected "timestamp"

                    testCase "a 255-character timestamp is accepted"
                    <| fun () ->
                        let ts = "<" + String('a', 100) + "@" + String('b', 152) + ">"
                        Expect.equal ts.Length 255 "fixture length"
                        Expect.equal (ReplyParser.apopTimestamp $"+OK {ts}") (Some ts) "timestamp"

                    testCase "a 256-character timestamp is refused"
                    <| fun () ->
                        let ts = "<" + String('a', 100) + "@" + String('b', 153) + ">"
                        Expect.equal (ReplyParser.apopTimestamp $"+OK {ts}") None "timestamp"

                    testCase "a 2 KB timestamp is refused"
                    <| fun () ->
                        let ts = "<" + String('a', 1000) + "@" + String('b', 1000) + ">"
                        Expect.equal (ReplyParser.apopTimestamp ts) None "timestamp"

                    // CPython CVE-2018-1060 (test_apop_REDOS): a regex backtracked on many '<'.
                    testCase "1,000,000 '<' return None in linear time (CVE-2018-1060)"
                    <| fun () ->
                        let greeting = "POP3 ready " + String('<', 1_000_000)

                        let result =
                            within 5.0 "1,000,000 '<'" (fun () -> ReplyParser.apopTimestamp greeting)

                        Expect.equal result None "no timestamp"

                    testCase "one '<' then 1,000,000 '>' return None in linear time"
                    <| fun () ->
                        let greeting = "<" + String('>', 1_000_000)

                        let result =
                            within 5.0 "'<' then 1,000,000 '>'" (fun () -> ReplyParser.apopTimestamp greeting)

                        Expect.equal result None "no timestamp"

                    testCase "'<a@@b' then 500,000 'x>' return None in linear time"
                    <| fun () ->
                        let greeting = "<a@@b" + String.replicate 500_000 "x>"

                        let result =
                            within 5.0 "500,000 'x>'" (fun () -> ReplyParser.apopTimestamp greeting)

                        Expect.equal result None "no timestamp"

                    testCase "alternating '<>' 500,000 times return None in linear time"
                    <| fun () ->
                        let greeting = String.replicate 500_000 "<>"

                        let result =
                            within 5.0 "500,000 '<>'" (fun () -> ReplyParser.apopTimestamp greeting)

                        Expect.equal result None "no timestamp"

                    testPropertyWithConfig (propConfig 1000) "any timestamp found is a strict msg-id"
                    <| Prop.forAll (Arb.fromGen (genBytes |> Gen.map Encoding.Latin1.GetString)) (fun text ->
                        match ReplyParser.apopTimestamp text with
                        | None -> ()
                        | Some ts ->
                            Expect.isTrue (text.Contains ts) "a substring of the greeting"
                            Expect.isTrue (ts.StartsWith '<' && ts.EndsWith '>') "in angle brackets"
                            Expect.isLessThanOrEqual ts.Length 255 "at most 255 characters"
                            let inner = ts.Substring(1, ts.Length - 2)
                            Expect.isFalse (inner.Contains '<' || inner.Contains '>') "no nested brackets"
                            Expect.all inner (fun c -> c >= '!' && c <= '~') "printable ASCII"
                            let at = inner.IndexOf '@'

                            Expect.isTrue
                                (at > 0 && at < inner.Length - 1 && inner.LastIndexOf '@' = at)
                                "exactly one inner '@'")
                ]

            testList
                "stat (RFC 1939 §5)"
                [
                    for payload, count, octets, quirks in
                        [
                            "2 320", 2UL, 320UL, []
                            "2 320 octets", 2UL, 320UL, []
                            "0 0", 0UL, 0UL, []
                            "7 1800662", 7UL, 1800662UL, []
                            "2147483647 2147483647", 2147483647UL, 2147483647UL, []
                            "2147483648 0", 2147483648UL, 0UL, [ Quirk.NumbersAbove2Pow31 ]
                            "1 18446744073709551615", 1UL, UInt64.MaxValue, [ Quirk.NumbersAbove2Pow31 ]
                            "2  320", 2UL, 320UL, [ Quirk.ExtraSpaces ]
                        ] do
                        testCase $"{show payload} -> {count} {octets}"
                        <| fun () ->
                            let v, q = stat all payload |> expectOk payload
                            Expect.equal v { Count = count; Octets = octets } "value"
                            Expect.equal (set q) (set quirks) "quirks reported"

                    // MailKit's comcast fixtures and other garbage.
                    for payload in
                        [
                            "7"
                            "seven 1800662"
                            "7 #octets"
                            "-1 5"
                            "+5 5"
                            "0x10 5"
                            "5 -1"
                            "5 1.5"
                            ""
                            "1 18446744073709551616"
                            "18446744073709551616 1"
                        ] do
                        testCase $"{show payload} is BadNumber"
                        <| fun () -> stat all payload |> expectError payload ProtocolErrorKind.BadNumber

                    testCase "a number above 2^31-1 is legal without NumbersAbove2Pow31 (DESIGN §12)"
                    <| fun () ->
                        let v, _ = stat none "2147483648 0" |> expectOk "2^31"
                        Expect.equal v.Count 2147483648UL "count"
                    testCase "a leading space needs ExtraSpaces"
                    <| fun () ->
                        stat none " 2 320" |> expectError "leading space" ProtocolErrorKind.BadListing
                        let v, q = stat all " 2 320" |> expectOk "leading space"
                        Expect.equal (v.Count, v.Octets) (2UL, 320UL) "parsed"
                        Expect.equal q [ Quirk.ExtraSpaces ] "quirk reported"
                    testCase "several spaces are refused without ExtraSpaces (thunderbird-android#323)"
                    <| fun () -> stat none "2  320" |> expectError "two spaces" ProtocolErrorKind.BadListing
                    testCase "a trailing space needs ExtraSpaces"
                    <| fun () ->
                        stat none "2 320 " |> expectError "trailing space" ProtocolErrorKind.BadListing
                        let _, q = stat all "2 320 " |> expectOk "trailing space"
                        Expect.equal q [ Quirk.ExtraSpaces ] "quirk reported"
                ]

            testList
                "listEntry (RFC 1939 §5)"
                [
                    testCase "1 120"
                    <| fun () ->
                        let v, q = list none "1 120" |> expectOk "1 120"
                        Expect.equal v { Number = 1UL; Octets = 120UL } "value"
                        Expect.isEmpty q "no quirk"
                    testCase "extra information after the size is allowed (RFC 1939 §5)"
                    <| fun () ->
                        let v, _ = list none "2 200 more info" |> expectOk "2 200 more info"
                        Expect.equal v { Number = 2UL; Octets = 200UL } "value"
                    testCase "several spaces need ExtraSpaces"
                    <| fun () ->
                        list none "1   120" |> expectError "spaces" ProtocolErrorKind.BadListing
                        let v, q = list all "1   120" |> expectOk "spaces"
                        Expect.equal v { Number = 1UL; Octets = 120UL } "value"
                        Expect.equal q [ Quirk.ExtraSpaces ] "quirk reported"
                    testCase "a size above 2^31-1 reports NumbersAbove2Pow31"
                    <| fun () ->
                        let v, q = list all "1 4294967296" |> expectOk "big"
                        Expect.equal v.Octets 4294967296UL "value"
                        Expect.equal q [ Quirk.NumbersAbove2Pow31 ] "quirk reported"
                    testCase "a number alone is BadListing"
                    <| fun () -> list all "1" |> expectError "1" ProtocolErrorKind.BadListing
                    testCase "an empty line is BadListing"
                    <| fun () -> list all "" |> expectError "empty" ProtocolErrorKind.BadListing
                    for payload in [ "a 120"; "1 b"; "-1 120"; "1 +120"; "1 0x78" ] do
                        testCase $"{show payload} is BadNumber"
                        <| fun () -> list all payload |> expectError payload ProtocolErrorKind.BadNumber
                ]

            testList
                "uidEntry (RFC 1939 §7)"
                [
                    testCase "the RFC example: 1 whqtswO00WBw418f9t5JxYwZ"
                    <| fun () ->
                        let v, q = uid none "1 whqtswO00WBw418f9t5JxYwZ" |> expectOk "uidl"
                        Expect.equal v.Number 1UL "number"
                        Expect.equal v.Uid.Value "whqtswO00WBw418f9t5JxYwZ" "uid"
                        Expect.isEmpty q "no quirk"
                    testCase "every character 0x21..0x7E is allowed"
                    <| fun () ->
                        let all94 = String [| for c in 0x21..0x7E -> char c |]
                        let v, _ = uid none ("3 " + all94.Substring(0, 70)) |> expectOk "first 70"
                        Expect.equal v.Uid.Value (all94.Substring(0, 70)) "uid"
                        let v, _ = uid none ("3 " + all94.Substring(24)) |> expectOk "last 70"
                        Expect.equal v.Uid.Value (all94.Substring 24) "uid"
                    testCase "a 1-character UID is allowed"
                    <| fun () ->
                        let v, _ = uid none "9 x" |> expectOk "short"
                        Expect.equal v.Uid.Value "x" "uid"
                    testCase "a 70-character UID is allowed"
                    <| fun () ->
                        let v, q = uid none ("1 " + longUid) |> expectOk "70"
                        Expect.equal v.Uid.Value longUid "uid"
                        Expect.isEmpty q "no quirk"
                    testCase "a 71-character UID is refused without LongUids"
                    <| fun () ->
                        uid (Options.Default.Quirks) ("1 " + longUid + "u")
                        |> expectError "71" ProtocolErrorKind.BadUid
                    testCase "a 71-character UID is accepted with LongUids and reports it"
                    <| fun () ->
                        let v, q = uid (set [ Quirk.LongUids ]) ("1 " + longUid + "u") |> expectOk "71"
                        Expect.equal v.Uid.Value (longUid + "u") "uid"
                        Expect.equal q [ Quirk.LongUids ] "quirk reported"
                    testCase "LongUids still requires printable ASCII"
                    <| fun () ->
                        uid all ("1 " + longUid + "\127") |> expectError "DEL" ProtocolErrorKind.BadUid
                        uid all ("1 " + longUid + "\200") |> expectError "0x80" ProtocolErrorKind.BadUid
                    for payload in [ "1 ab\001c"; "1 ab\127"; "1 ab\200"; "1 abc def"; "1 ab\tc" ] do
                        testCase $"{show payload} is BadUid"
                        <| fun () -> uid all payload |> expectError payload ProtocolErrorKind.BadUid
                    testCase "a number alone is BadUid"
                    <| fun () -> uid all "1" |> expectError "1" ProtocolErrorKind.BadUid
                    testCase "a bad number is BadNumber"
                    <| fun () -> uid all "x abc" |> expectError "x abc" ProtocolErrorKind.BadNumber
                ]

            testList
                "languageEntry (RFC 6856 §3)"
                [
                    for line, tag, description in
                        [
                            "en English", "en", "English"
                            "en-boont Default Boontling", "en-boont", "Default Boontling"
                            "i-default", "i-default", ""
                        ] do
                        testCase (show line)
                        <| fun () ->
                            let v, _ =
                                ReplyParser.languageEntry false (ReadOnlySpan(latin1 line)) |> expectOk line

                            Expect.equal v { Tag = tag; Description = description } "entry"
                    testCase "descriptions are UTF-8 in UTF8 mode"
                    <| fun () ->
                        let bytes = Encoding.UTF8.GetBytes "es Español"
                        let v, _ = ReplyParser.languageEntry true (ReadOnlySpan bytes) |> expectOk "es"
                        Expect.equal v { Tag = "es"; Description = "Español" } "entry"
                    testCase "an empty line is BadListing"
                    <| fun () ->
                        ReplyParser.languageEntry false ReadOnlySpan<byte>.Empty
                        |> expectError "empty" ProtocolErrorKind.BadListing
                ]

            testList
                "capabilityLine (RFC 2449 §6, RFC 2595 §4, RFC 6856)"
                [
                    let check name lines (expect: Capabilities -> unit) =
                        testCase name <| fun () -> expect (caps lines)

                    check "TOP" [ "TOP" ] (fun c -> Expect.isTrue c.Top "Top")
                    check "USER" [ "USER" ] (fun c -> Expect.isTrue c.User "User")

                    check "SASL mechanisms accumulate over lines" [ "SASL PLAIN LOGIN"; "SASL CRAM-MD5" ] (fun c ->
                        Expect.equal c.Sasl [ "PLAIN"; "LOGIN"; "CRAM-MD5" ] "Sasl")

                    check "RESP-CODES" [ "RESP-CODES" ] (fun c -> Expect.isTrue c.RespCodes "RespCodes")

                    check "AUTH-RESP-CODE (RFC 3206 §6)" [ "AUTH-RESP-CODE" ] (fun c ->
                        Expect.isTrue c.AuthRespCode "AuthRespCode")

                    check "LOGIN-DELAY n" [ "LOGIN-DELAY 900" ] (fun c ->
                        Expect.equal c.LoginDelay (Some { Seconds = 900UL; PerUser = false }) "LoginDelay")

                    check "LOGIN-DELAY n USER" [ "LOGIN-DELAY 900 USER" ] (fun c ->
                        Expect.equal c.LoginDelay (Some { Seconds = 900UL; PerUser = true }) "LoginDelay")

                    check "PIPELINING" [ "PIPELINING" ] (fun c -> Expect.isTrue c.Pipelining "Pipelining")

                    check "EXPIRE n" [ "EXPIRE 60" ] (fun c ->
                        Expect.equal c.Expire (Some { Days = Some 60UL; PerUser = false }) "Expire")

                    check "EXPIRE NEVER" [ "EXPIRE NEVER" ] (fun c ->
                        Expect.equal c.Expire (Some { Days = None; PerUser = false }) "Expire")

                    check "EXPIRE 0" [ "EXPIRE 0" ] (fun c ->
                        Expect.equal c.Expire (Some { Days = Some 0UL; PerUser = false }) "Expire")

                    check "EXPIRE n USER" [ "EXPIRE 30 USER" ] (fun c ->
                        Expect.equal c.Expire (Some { Days = Some 30UL; PerUser = true }) "Expire")

                    check "EXPIRE n User (any case)" [ "EXPIRE 30 User" ] (fun c ->
                        Expect.equal c.Expire (Some { Days = Some 30UL; PerUser = true }) "Expire")

                    check "UIDL" [ "UIDL" ] (fun c -> Expect.isTrue c.Uidl "Uidl")

                    check
                        "IMPLEMENTATION keeps the whole text with spaces"
                        [ "IMPLEMENTATION Shlemazle Plotz-v302" ]
                        (fun c -> Expect.equal c.Implementation (Some "Shlemazle Plotz-v302") "Implementation")

                    check "STLS" [ "STLS" ] (fun c -> Expect.isTrue c.Stls "Stls")
                    check "UTF8" [ "UTF8" ] (fun c -> Expect.equal c.Utf8 (Some false) "Utf8")
                    check "UTF8 USER" [ "UTF8 USER" ] (fun c -> Expect.equal c.Utf8 (Some true) "Utf8")
                    check "LANG" [ "LANG" ] (fun c -> Expect.isTrue c.Lang "Lang")

                    check
                        "tags are case-insensitive"
                        [
                            "top"
                            "User"
                            "sasl PLAIN"
                            "stls"
                            "utf8 user"
                            "login-delay 5 user"
                            "expire never"
                        ]
                        (fun c ->
                            Expect.isTrue c.Top "Top"
                            Expect.isTrue c.User "User"
                            Expect.equal c.Sasl [ "PLAIN" ] "Sasl"
                            Expect.isTrue c.Stls "Stls"
                            Expect.equal c.Utf8 (Some true) "Utf8"
                            Expect.equal c.LoginDelay (Some { Seconds = 5UL; PerUser = true }) "LoginDelay"
                            Expect.equal c.Expire (Some { Days = None; PerUser = false }) "Expire"
                            Expect.isEmpty c.Other "nothing unknown")

                    check
                        "unknown tags are kept in Other"
                        [ "X-GOOGLE-RICO"; "XOIP"; "RESP-CODE"; "X-FOO a b" ]
                        (fun c ->
                            Expect.equal
                                c.Other
                                [ "X-GOOGLE-RICO", []; "XOIP", []; "RESP-CODE", []; "X-FOO", [ "a"; "b" ] ]
                                "Other"

                            Expect.isFalse c.RespCodes "RESP-CODE is not RESP-CODES")

                    check "LOGIN-DELAY abc is kept in Other" [ "LOGIN-DELAY abc" ] (fun c ->
                        Expect.equal c.LoginDelay None "LoginDelay"
                        Expect.equal c.Other [ "LOGIN-DELAY", [ "abc" ] ] "Other")

                    check "LOGIN-DELAY -5 is kept in Other" [ "LOGIN-DELAY -5" ] (fun c ->
                        Expect.equal c.LoginDelay None "LoginDelay"
                        Expect.equal c.Other [ "LOGIN-DELAY", [ "-5" ] ] "Other")

                    check "EXPIRE soon is kept in Other" [ "EXPIRE soon" ] (fun c ->
                        Expect.equal c.Expire None "Expire"
                        Expect.equal c.Other [ "EXPIRE", [ "soon" ] ] "Other")

                    check "TOP with an argument is kept in Other" [ "TOP 5" ] (fun c ->
                        Expect.isFalse c.Top "Top"
                        Expect.equal c.Other [ "TOP", [ "5" ] ] "Other")

                    check "IMPLEMENTATION with no text is kept in Other" [ "IMPLEMENTATION" ] (fun c ->
                        Expect.equal c.Implementation None "Implementation"
                        Expect.equal c.Other [ "IMPLEMENTATION", [] ] "Other")

                    check "Lines keeps the raw lines in order" [ "USER"; "X-UNKNOWN  two  spaces"; ""; "top" ] (fun c ->
                        Expect.equal c.Lines [ "USER"; "X-UNKNOWN  two  spaces"; ""; "top" ] "Lines")

                    check
                        "a typical server answer (Dovecot)"
                        [
                            "CAPA"
                            "TOP"
                            "UIDL"
                            "RESP-CODES"
                            "PIPELINING"
                            "AUTH-RESP-CODE"
                            "STLS"
                            "USER"
                            "SASL PLAIN LOGIN"
                        ]
                        (fun c ->
                            Expect.isTrue
                                (c.Top
                                 && c.Uidl
                                 && c.RespCodes
                                 && c.Pipelining
                                 && c.AuthRespCode
                                 && c.Stls
                                 && c.User)
                                "flags"

                            Expect.equal c.Sasl [ "PLAIN"; "LOGIN" ] "Sasl"
                            Expect.equal c.Other [ "CAPA", [] ] "CAPA itself is not a capability")

                    check "no line leaves everything empty" [] (fun c -> Expect.equal c Capabilities.Empty "Empty")
                ]

            testList
                "tryParseNumber"
                [
                    for s, expected in
                        [
                            "0", Some 0UL
                            "7", Some 7UL
                            "007", Some 7UL
                            "18446744073709551615", Some UInt64.MaxValue
                            "18446744073709551616", None
                            "99999999999999999999", None
                            "", None
                            "-1", None
                            "+1", None
                            " 1", None
                            "1 ", None
                            "0x10", None
                            "1e3", None
                        ] do
                        testCase (sprintf "%s -> %A" (show s) expected)
                        <| fun () -> Expect.equal (number s) expected "value"

                    testPropertyWithConfig
                        (propConfig 1000)
                        "agrees with UInt64.TryParse(NumberStyles.None) on digit strings"
                    <| Prop.forAll (Arb.fromGen genDigits) (fun s ->
                        let ok, v = UInt64.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture)
                        let expected = if ok then Some v else None
                        Expect.equal (number s) expected $"digits {s}")

                    testPropertyWithConfig (propConfig 1000) "rejects anything with a non-digit"
                    <| Prop.forAll (Arb.fromGen genNonNumber) (fun s ->
                        let bytes = Encoding.UTF8.GetBytes s

                        match ReplyParser.tryParseNumber (ReadOnlySpan bytes) with
                        | ValueSome v -> failtestf "%s parsed as %d" (show s) v
                        | ValueNone -> ())
                ]

            testPropertyWithConfig
                (propConfig 1000)
                "statusLine round trip: +OK/-ERR [CODE] text parses to the same code and text"
            <| Prop.forAll
                (Arb.fromGen (Gen.zip3 (Gen.elements [ true; false ]) genCode genText))
                (fun (isOk, code, text) ->
                    let line = (if isOk then "+OK [" else "-ERR [") + code.Text + "] " + text
                    let v, q = status none line |> expectOk line
                    Expect.equal v.IsOk isOk "IsOk"
                    Expect.equal v.Code (Some code) "Code"
                    Expect.equal v.Text text "Text"
                    Expect.isEmpty q "no quirk")

            testList
                "no parser throws"
                [
                    for parse, name in
                        [
                            (fun (b: byte[]) ->
                                ReplyParser.statusLine all false (ReadOnlySpan b) |> ignore
                                ReplyParser.statusLine none true (ReadOnlySpan b) |> ignore),
                            "statusLine"
                            (fun b -> ReplyParser.isContinuation (ReadOnlySpan b) |> ignore), "isContinuation"
                            (fun b -> ReplyParser.apopTimestamp (Encoding.Latin1.GetString b) |> ignore),
                            "apopTimestamp"
                            (fun b ->
                                ReplyParser.stat all (ReadOnlySpan b) |> ignore
                                ReplyParser.stat none (ReadOnlySpan b) |> ignore),
                            "stat"
                            (fun b ->
                                ReplyParser.listEntry all (ReadOnlySpan b) |> ignore
                                ReplyParser.listEntry none (ReadOnlySpan b) |> ignore),
                            "listEntry"
                            (fun b ->
                                ReplyParser.uidEntry all (ReadOnlySpan b) |> ignore
                                ReplyParser.uidEntry none (ReadOnlySpan b) |> ignore),
                            "uidEntry"
                            (fun b ->
                                ReplyParser.languageEntry true (ReadOnlySpan b) |> ignore
                                ReplyParser.languageEntry false (ReadOnlySpan b) |> ignore),
                            "languageEntry"
                            (fun b ->
                                ReplyParser.capabilityLine Capabilities.Empty (Encoding.Latin1.GetString b)
                                |> ignore

                                ReplyParser.capabilityLine Capabilities.Empty (Encoding.UTF8.GetString b)
                                |> ignore),
                            "capabilityLine"
                            (fun b -> ReplyParser.tryParseNumber (ReadOnlySpan b) |> ignore), "tryParseNumber"
                        ] do
                        noThrow name parse
                        noThrowBiased name parse
                ]
        ]
