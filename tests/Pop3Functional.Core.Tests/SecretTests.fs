module Pop3Functional.Core.Tests.SecretTests

open System
open System.Reflection
open System.Text
open Expecto
open Pop3Functional.Core

/// A record such as a caller might log: the secret must not show through %A (DESIGN §6).
type private Credentials = { User: string; Password: Secret }

/// The secret's own storage, read by reflection to prove that Dispose wipes it.
let private storage (s: Secret) =
    let field =
        typeof<Secret>.GetFields(BindingFlags.NonPublic ||| BindingFlags.Instance)
        |> Array.find (fun f -> f.FieldType = typeof<byte[]>)

    field.GetValue s :?> byte[]

let private canary = "Canary-Pw-7f3a"

[<Tests>]
let tests =
    testList
        "SecretTests"
        [
            testCase "ToString is redacted"
            <| fun () ->
                let s = Secret.FromString canary
                Expect.equal (s.ToString()) "********" "ToString must not reveal the secret"
                Expect.isFalse ((string s).Contains canary) "string conversion must not reveal the secret"
                Expect.isFalse ($"{s}".Contains canary) "interpolation must not reveal the secret"

            testCase "a Secret inside a record printed with %A does not show the value"
            <| fun () ->
                let c =
                    {
                        User = "mrose"
                        Password = Secret.FromString canary
                    }

                let printed = sprintf "%A" c
                Expect.stringContains printed "mrose" "the public field is printed"
                Expect.isFalse (printed.Contains canary) $"%%A leaked the secret: {printed}"
                Expect.isFalse ((sprintf "%O" c).Contains canary) "%O must not leak the secret"

            testCase "a Secret inside a Request printed with %A does not show the value"
            <| fun () ->
                let printed = sprintf "%A" (Request.Pass(Secret.FromString canary))
                Expect.isFalse (printed.Contains canary) $"%%A leaked the secret: {printed}"

            testCase "RevealString round-trips ASCII and non-ASCII text"
            <| fun () ->
                for value in [ "tanstaaf"; "pässwörd €"; "emoji 😀 pw"; "with spaces in it"; "x" ] do
                    use s = Secret.FromString value
                    Expect.equal (s.RevealString()) value $"round trip of {value}"

            testCase "RevealUtf8Bytes is the UTF-8 encoding and Length counts octets"
            <| fun () ->
                let value = "pässwörd €"
                use s = Secret.FromString value
                Expect.equal (s.RevealUtf8Bytes()) (Encoding.UTF8.GetBytes value) "UTF-8 bytes"
                Expect.equal s.Length (Encoding.UTF8.GetByteCount value) "Length is in octets, not chars"

            testCase "FromBytes copies the caller's array, and RevealUtf8Bytes hands out a copy"
            <| fun () ->
                let raw = Encoding.ASCII.GetBytes "secret-bytes"
                use s = Secret.FromBytes(ReadOnlySpan raw)
                Array.Clear raw
                Expect.equal (s.RevealString()) "secret-bytes" "wiping the caller's array must not change the secret"
                let revealed = s.RevealUtf8Bytes()
                Array.Clear revealed
                Expect.equal (s.RevealString()) "secret-bytes" "wiping a revealed copy must not change the secret"

            testCase "the empty secret is allowed and has length 0"
            <| fun () ->
                use s = Secret.FromString ""
                Expect.equal s.Length 0 "length"
                Expect.equal (s.RevealString()) "" "value"

            testCase "FromString null is refused"
            <| fun () ->
                Expect.throwsT<ArgumentNullException> (fun () -> Secret.FromString null |> ignore) "null secret"

            testList
                "HasLineBreakOrNul"
                [
                    for value, expected in
                        [
                            "plain", false
                            "with space", false
                            "tab\there", false
                            "cr\rhere", true
                            "lf\nhere", true
                            "crlf\r\n", true
                            "nul\000here", true
                            "\r", true
                            "é€😀", false
                        ] do
                        testCase (sprintf "\"%s\" -> %b" (Bytes.escapeControls value) expected)
                        <| fun () ->
                            use s = Secret.FromString value
                            Expect.equal s.HasLineBreakOrNul expected "HasLineBreakOrNul"
                ]

            testCase "Dispose wipes the stored bytes"
            <| fun () ->
                let s = Secret.FromString canary
                let inner = storage s
                Expect.equal inner (Encoding.UTF8.GetBytes canary) "the storage holds the secret before Dispose"
                (s :> IDisposable).Dispose()
                Expect.all inner (fun b -> b = 0uy) "every stored byte is zero after Dispose"

            testCase "Reveal after Dispose throws ObjectDisposedException"
            <| fun () ->
                let s = Secret.FromString canary
                (s :> IDisposable).Dispose()
                Expect.throwsT<ObjectDisposedException> (fun () -> s.RevealString() |> ignore) "RevealString"
                Expect.throwsT<ObjectDisposedException> (fun () -> s.RevealUtf8Bytes() |> ignore) "RevealUtf8Bytes"
                Expect.equal (s.ToString()) "********" "ToString stays redacted and does not throw"

            testCase "Dispose twice is harmless"
            <| fun () ->
                let s = Secret.FromString canary
                (s :> IDisposable).Dispose()
                (s :> IDisposable).Dispose()
                Expect.throwsT<ObjectDisposedException> (fun () -> s.RevealString() |> ignore) "still disposed"
        ]
