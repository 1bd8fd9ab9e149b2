/// The login choice: the strongest method the server offers, plaintext-revealing ones only over TLS.
module Pop3Functional.Core.Tests.LoginChoiceTests

open Expecto
open Pop3Functional.Core

let private tls =
    {
        CapaSupported = true
        SaslMechanisms = []
        UserOffered = false
        TlsActive = true
        ChannelBindingType = None
        AllowPlaintextCredentials = false
        ApopAvailable = false
    }

let private plaintext = { tls with TlsActive = false }

let private sasl (names: string) = names.Split ' ' |> List.ofArray

let private chosen facts kind named expected =
    match LoginChoice.choose facts kind named with
    | Ok m -> Expect.equal m.Name expected "chosen"
    | Error e -> failtestf "refused: %s" e.Message

let private refused facts kind named (expected: UsageErrorKind) =
    match LoginChoice.choose facts kind named with
    | Ok m -> failtestf "chose %s" m.Name
    | Error e ->
        Expect.equal e.Kind expected "kind"
        e

let private pw = SaslCredentialKind.Password
let private token = SaslCredentialKind.OAuth2

let private row name facts kind expected =
    testCase name <| fun () -> chosen facts kind None expected

[<Tests>]
let tests =
    testList
        "login choice"
        [
            testList
                "automatic, passwords: the order of preference"
                [
                    let all =
                        sasl "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-256-PLUS"

                    row
                        "SCRAM-SHA-256-PLUS first, with tls-unique channel binding (TLS 1.2)"
                        { tls with
                            SaslMechanisms = all
                            ChannelBindingType = Some "tls-unique"
                            UserOffered = true
                            ApopAvailable = true
                        }
                        pw
                        "SCRAM-SHA-256-PLUS"

                    row
                        "SCRAM-SHA-1-PLUS over SCRAM-SHA-256"
                        { tls with
                            SaslMechanisms = sasl "SCRAM-SHA-256 SCRAM-SHA-1-PLUS"
                            ChannelBindingType = Some "tls-unique"
                        }
                        pw
                        "SCRAM-SHA-1-PLUS"

                    row
                        "tls-exporter (RFC 9266 §3, the TLS 1.3 default) also makes -PLUS the choice"
                        { tls with
                            SaslMechanisms = all
                            ChannelBindingType = Some "tls-exporter"
                        }
                        pw
                        "SCRAM-SHA-256-PLUS"

                    row
                        "tls-server-end-point only (.NET on TLS 1.3): SCRAM-SHA-256, since a server may refuse that type"
                        { tls with
                            SaslMechanisms = all
                            ChannelBindingType = Some "tls-server-end-point"
                        }
                        pw
                        "SCRAM-SHA-256"

                    row
                        "tls-server-end-point and only -PLUS offered as SCRAM: CRAM-MD5, not a -PLUS that may fail"
                        { tls with
                            SaslMechanisms = sasl "CRAM-MD5 SCRAM-SHA-256-PLUS"
                            ChannelBindingType = Some "tls-server-end-point"
                        }
                        pw
                        "CRAM-MD5"

                    row
                        "binding data without TLS counts for nothing"
                        { plaintext with
                            SaslMechanisms = all
                            ChannelBindingType = Some "tls-unique"
                        }
                        pw
                        "SCRAM-SHA-256"

                    row
                        "no channel-binding data: SCRAM-SHA-256, never -PLUS"
                        { tls with SaslMechanisms = all }
                        pw
                        "SCRAM-SHA-256"

                    row
                        "SCRAM-SHA-1 over CRAM-MD5"
                        { tls with
                            SaslMechanisms = sasl "PLAIN CRAM-MD5 SCRAM-SHA-1"
                        }
                        pw
                        "SCRAM-SHA-1"

                    row
                        "CRAM-MD5 over APOP"
                        { tls with
                            SaslMechanisms = sasl "PLAIN CRAM-MD5"
                            ApopAvailable = true
                        }
                        pw
                        "CRAM-MD5"

                    row
                        "APOP over PLAIN"
                        { tls with
                            SaslMechanisms = sasl "PLAIN LOGIN"
                            ApopAvailable = true
                            UserOffered = true
                        }
                        pw
                        "APOP"

                    row
                        "PLAIN over LOGIN and USER, over TLS"
                        { tls with
                            SaslMechanisms = sasl "LOGIN PLAIN"
                            UserOffered = true
                        }
                        pw
                        "PLAIN"

                    row
                        "LOGIN over USER"
                        { tls with
                            SaslMechanisms = sasl "LOGIN"
                            UserOffered = true
                        }
                        pw
                        "LOGIN"

                    row "USER when it is all there is" { tls with UserOffered = true } pw "USER"

                    row
                        "mechanism names in any case"
                        { tls with
                            SaslMechanisms = sasl "scram-sha-1 plain"
                        }
                        pw
                        "SCRAM-SHA-1"

                    row
                        "without TLS, SCRAM still (it never reveals the password)"
                        { plaintext with
                            SaslMechanisms = sasl "PLAIN SCRAM-SHA-256"
                            UserOffered = true
                        }
                        pw
                        "SCRAM-SHA-256"

                    row
                        "without TLS, APOP before the plaintext ones"
                        { plaintext with
                            SaslMechanisms = sasl "PLAIN"
                            UserOffered = true
                            ApopAvailable = true
                        }
                        pw
                        "APOP"

                    row
                        "without TLS and with plaintext allowed, PLAIN"
                        { plaintext with
                            SaslMechanisms = sasl "PLAIN"
                            UserOffered = true
                            AllowPlaintextCredentials = true
                        }
                        pw
                        "PLAIN"

                    row
                        "a server without CAPA: USER is assumed, SASL is not"
                        { tls with CapaSupported = false }
                        pw
                        "USER"

                    row
                        "a server without CAPA with a timestamp: APOP"
                        { tls with
                            CapaSupported = false
                            ApopAvailable = true
                        }
                        pw
                        "APOP"

                    row
                        "unknown mechanisms are passed over"
                        { tls with
                            SaslMechanisms = sasl "GSSAPI NTLM DIGEST-MD5 PLAIN"
                        }
                        pw
                        "PLAIN"
                ]
            testList
                "automatic: nothing fits"
                [
                    testCase "without TLS, PLAIN, LOGIN and USER are refused unless allowed"
                    <| fun () ->
                        let e =
                            refused
                                { plaintext with
                                    SaslMechanisms = sasl "PLAIN LOGIN"
                                    UserOffered = true
                                }
                                pw
                                None
                                UsageErrorKind.PlaintextCredentials

                        Expect.stringContains e.Message "SASL PLAIN LOGIN, USER" "says what the server offers"

                    testCase "nothing this client knows is offered"
                    <| fun () ->
                        let e =
                            refused
                                { tls with
                                    SaslMechanisms = sasl "GSSAPI"
                                }
                                pw
                                None
                                UsageErrorKind.CapabilityMissing

                        Expect.stringContains e.Message "GSSAPI" "says what the server offers"
                ]
            testList
                "automatic, OAuth 2 tokens"
                [
                    row
                        "OAUTHBEARER over XOAUTH2"
                        { tls with
                            SaslMechanisms = sasl "XOAUTH2 OAUTHBEARER PLAIN"
                        }
                        token
                        "OAUTHBEARER"
                    row
                        "XOAUTH2 when it is the one offered"
                        { tls with
                            SaslMechanisms = sasl "XOAUTH2 PLAIN"
                        }
                        token
                        "XOAUTH2"
                    testCase "a token never goes to a password mechanism"
                    <| fun () ->
                        refused
                            { tls with
                                SaslMechanisms = sasl "PLAIN SCRAM-SHA-256"
                                UserOffered = true
                            }
                            token
                            None
                            UsageErrorKind.CapabilityMissing
                        |> ignore
                    testCase "a bearer token needs TLS unless allowed"
                    <| fun () ->
                        let facts =
                            { plaintext with
                                SaslMechanisms = sasl "XOAUTH2"
                            }

                        let e = refused facts token None UsageErrorKind.PlaintextCredentials
                        Expect.stringContains e.Message "bearer token" "says what"

                        chosen
                            { facts with
                                AllowPlaintextCredentials = true
                            }
                            token
                            None
                            "XOAUTH2"
                ]
            testList
                "named by the caller"
                [
                    let offers =
                        { tls with
                            SaslMechanisms = sasl "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN"
                            UserOffered = true
                        }

                    testCase "an offered mechanism is used even when a stronger one is offered"
                    <| fun () -> chosen offers pw (Some "scram-sha-1") "SCRAM-SHA-1"

                    testCase "USER and APOP can be named"
                    <| fun () ->
                        chosen offers pw (Some "user") "USER"
                        chosen { offers with ApopAvailable = true } pw (Some "APOP") "APOP"

                    testCase "a mechanism the server does not offer is refused, saying what it offers"
                    <| fun () ->
                        let e = refused offers pw (Some "CRAM-MD5") UsageErrorKind.CapabilityMissing
                        Expect.stringContains e.Message "SASL SCRAM-SHA-256 SCRAM-SHA-1 PLAIN, USER" "offers"

                    testCase "a mechanism this client does not implement is refused"
                    <| fun () ->
                        let e =
                            refused
                                { offers with
                                    SaslMechanisms = sasl "GSSAPI"
                                }
                                pw
                                (Some "GSSAPI")
                                UsageErrorKind.InvalidArgument

                        Expect.stringContains e.Message "not a login method this client implements" "why"

                    testCase "-PLUS named: any binding type will do, tls-server-end-point included"
                    <| fun () ->
                        chosen
                            { offers with
                                SaslMechanisms = sasl "SCRAM-SHA-256 SCRAM-SHA-256-PLUS"
                                ChannelBindingType = Some "tls-server-end-point"
                            }
                            pw
                            (Some "SCRAM-SHA-256-PLUS")
                            "SCRAM-SHA-256-PLUS"

                    testCase "-PLUS needs channel-binding data"
                    <| fun () ->
                        refused
                            { offers with
                                SaslMechanisms = sasl "SCRAM-SHA-256-PLUS"
                            }
                            pw
                            (Some "SCRAM-SHA-256-PLUS")
                            UsageErrorKind.InvalidArgument
                        |> ignore

                    testCase "APOP without a timestamp"
                    <| fun () -> refused offers pw (Some "APOP") UsageErrorKind.ApopUnavailable |> ignore

                    testCase "PLAIN named without TLS"
                    <| fun () ->
                        refused { offers with TlsActive = false } pw (Some "PLAIN") UsageErrorKind.PlaintextCredentials
                        |> ignore

                    testCase "the kind of credential must fit the mechanism"
                    <| fun () ->
                        refused
                            { offers with
                                SaslMechanisms = sasl "XOAUTH2 PLAIN"
                            }
                            pw
                            (Some "XOAUTH2")
                            UsageErrorKind.InvalidArgument
                        |> ignore

                        refused offers token (Some "PLAIN") UsageErrorKind.InvalidArgument |> ignore

                    testCase "without CAPA a named SASL mechanism is tried"
                    <| fun () -> chosen { offers with CapaSupported = false } pw (Some "CRAM-MD5") "CRAM-MD5"

                    testCase "an empty name is the automatic choice"
                    <| fun () -> chosen offers pw (Some " ") "SCRAM-SHA-256"
                ]
        ]
