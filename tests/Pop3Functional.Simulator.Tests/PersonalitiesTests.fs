module Pop3Functional.Simulator.Tests.PersonalitiesTests

open System
open Expecto
open Pop3Functional.Core
open Pop3Functional.Simulator

/// The mechanisms the simulator implements.
let private implemented = set SaslServer.mechanisms

/// The CAPA lines a client would see, with the "SASL" substitution the server makes (STLS is kept,
/// as on a connection where it is possible).
let private wireLines (p: Personality) (lines: string list) =
    lines
    |> List.choose (fun line ->
        match line, p.SaslMechanisms with
        | "SASL", [] -> None
        | "SASL", mechanisms -> Some("SASL " + String.Join(' ', mechanisms))
        | other, _ -> Some other)

/// The lines parsed by the client's own CAPA grammar, so the presets say what the client reads.
let private parse (p: Personality) (lines: string list) =
    wireLines p lines |> List.fold ReplyParser.capabilityLine Capabilities.Empty

/// Every disagreement between a preset's flags and its CAPA lists. A command usable only in the
/// TRANSACTION state (TOP, UIDL) must be listed after login; one usable only in the AUTHORIZATION
/// state (USER, SASL, UTF8: RFC 2449 §6, RFC 6856 §2) must be listed before login, and may be
/// dropped after it (Gmail drops SASL, Dovecot and Cyrus drop USER). RESP-CODES must be listed
/// after login, LANG (both states, RFC 6856 §3) in either list. Nothing off may be listed anywhere.
let private disagreements (p: Personality) =
    if not p.CapaSupported then
        [
            if not p.CapabilitiesBeforeLogin.IsEmpty then
                "CAPA is not supported but CapabilitiesBeforeLogin is not empty"
            if not p.CapabilitiesAfterLogin.IsEmpty then
                "CAPA is not supported but CapabilitiesAfterLogin is not empty"
        ]
    else
        let before = parse p p.CapabilitiesBeforeLogin
        let after = parse p p.CapabilitiesAfterLogin

        let check name (on: bool) (listed: Capabilities -> bool) (requiredIn: (string * Capabilities) list) =
            [
                if on then
                    for where, caps in requiredIn do
                        if not (listed caps) then
                            $"{name} is on but not listed {where} login"
                else if listed before || listed after then
                    $"{name} is off but listed"
            ]

        [
            yield! check "TOP" p.Top _.Top [ "after", after ]
            yield! check "UIDL" p.Uidl _.Uidl [ "after", after ]
            yield! check "USER" p.UserPass _.User [ "before", before ]
            yield! check "SASL" (not p.SaslMechanisms.IsEmpty) (fun c -> not c.Sasl.IsEmpty) [ "before", before ]
            yield! check "UTF8" p.Utf8 _.Utf8.IsSome [ "before", before ]
            yield! check "RESP-CODES" p.ResponseCodes _.RespCodes [ "after", after ]

            let lang = not p.Languages.IsEmpty

            if lang && not (before.Lang || after.Lang) then
                "LANG is on but not listed"

            if not lang && (before.Lang || after.Lang) then
                "LANG is off but listed"

            for line in p.CapabilitiesBeforeLogin @ p.CapabilitiesAfterLogin do
                let keyword = line.Split(' ')[0]

                if keyword.Equals("SASL", StringComparison.OrdinalIgnoreCase) && line <> "SASL" then
                    $"\"{line}\": write the bare SASL token, the server adds the mechanisms"
        ]

let private presetTests (name: string, p: Personality) =
    testList
        name
        [
            test "its CAPA lists agree with its flags" {
                Expect.equal (disagreements p) [] "flags and capability lines disagree"
            }

            test "the greeting carries {timestamp} exactly when APOP is on" {
                let count = p.Greeting.Split("{timestamp}").Length - 1

                Expect.equal count (if p.Apop then 1 else 0) "occurrences of {timestamp} in the greeting"
            }

            test "it lists only SASL mechanisms the simulator implements, each once" {
                for m in p.SaslMechanisms do
                    Expect.isTrue (implemented.Contains m) $"{m} is not implemented"

                Expect.equal (List.distinct p.SaslMechanisms) p.SaslMechanisms "no duplicates"
            }

            test "its Name is the key it is listed under" { Expect.equal p.Name name "Name" }
        ]

[<Tests>]
let tests =
    testList
        "Personalities"
        [
            yield! Personalities.all |> List.map presetTests

            test "all has the eight presets, in order" {
                Expect.equal
                    (Personalities.all |> List.map fst)
                    [
                        "simulator"
                        "dovecot"
                        "courier"
                        "cyrus"
                        "gmail"
                        "exchange"
                        "qmail"
                        "rfc1939"
                    ]
                    "names"
            }

            test "tryFind ignores case and returns None for an unknown name" {
                Expect.equal (Personalities.tryFind "DOVECOT") (Some Personalities.dovecot) "DOVECOT"
                Expect.equal (Personalities.tryFind "Gmail") (Some Personalities.gmail) "Gmail"
                Expect.equal (Personalities.tryFind "rfc1939") (Some Personalities.rfc1939) "rfc1939"
                Expect.isNone (Personalities.tryFind "hmailserver") "unknown"
                Expect.isNone (Personalities.tryFind "") "empty"
            }

            test "the consistency check catches a flag the lists contradict" {
                let broken =
                    { Personalities.dovecot with
                        Top = false
                        SaslMechanisms = []
                    }

                Expect.equal
                    (disagreements broken)
                    [ "TOP is off but listed" ]
                    "a SASL token with no mechanisms is dropped, so only TOP disagrees"

                let literal =
                    { Personalities.exchange with
                        CapabilitiesBeforeLogin = [ "TOP"; "UIDL"; "SASL PLAIN"; "USER" ]
                    }

                Expect.equal
                    (disagreements literal)
                    [ "\"SASL PLAIN\": write the bare SASL token, the server adds the mechanisms" ]
                    "literal mechanisms"
            }

            // Facts each preset exists to reproduce (DESIGN §9, peers.md §4).
            test "Cyrus: RETR without a size, a bare +OK to QUIT, no lock" {
                let p = Personalities.cyrus
                Expect.equal p.RetrStatus RetrStatusStyle.MessageFollows "RETR status"
                Expect.equal p.QuitText "" "QUIT text"
                Expect.isFalse p.LocksMaildrop "never locks"
            }

            test "Courier: LOGIN-DELAY 10 advertised, not enforced; 8-bit headers rewritten; no APOP" {
                let p = Personalities.courier
                let caps = parse p p.CapabilitiesBeforeLogin

                Expect.equal caps.LoginDelay (Some { Seconds = 10UL; PerUser = false }) "advertised"
                Expect.equal p.EnforcedLoginDelay TimeSpan.Zero "not enforced"
                Expect.isTrue p.RewritesEightBitHeaders "rewrites"
                Expect.isFalse p.Apop "no APOP"
                Expect.equal caps.Utf8 (Some true) "UTF8 USER"
            }

            test "Gmail: SASL only before login, PIPELINING only after" {
                let p = Personalities.gmail
                let before = parse p p.CapabilitiesBeforeLogin
                let after = parse p p.CapabilitiesAfterLogin

                Expect.equal before.Sasl [ "PLAIN"; "XOAUTH2"; "OAUTHBEARER" ] "SASL before login"
                Expect.isFalse before.Pipelining "no PIPELINING before login"
                Expect.isEmpty after.Sasl "no SASL after login"
                Expect.isTrue after.Pipelining "PIPELINING after login"
                Expect.equal before.Other [ "X-GOOGLE-RICO", [] ] "vendor token"
            }

            test "Exchange: a bare + continuation, no response codes" {
                Expect.equal Personalities.exchange.Continuation ContinuationStyle.BarePlus "continuation"
                Expect.isFalse Personalities.exchange.ResponseCodes "no RESP-CODES"
            }

            test "Dovecot: locks, APOP, and the measured capabilities before login" {
                let p = Personalities.dovecot
                let caps = parse p p.CapabilitiesBeforeLogin

                Expect.isTrue p.LocksMaildrop "pop3_lock_session = yes"
                Expect.isTrue p.Apop "APOP"
                Expect.isTrue (caps.Stls && caps.AuthRespCode && caps.Pipelining) "STLS AUTH-RESP-CODE PIPELINING"
                Expect.equal caps.Sasl [ "PLAIN"; "LOGIN"; "CRAM-MD5"; "SCRAM-SHA-1"; "SCRAM-SHA-256" ] "SASL"
            }
        ]
