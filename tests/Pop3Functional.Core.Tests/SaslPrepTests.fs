/// SASLprep (RFC 4013) as SCRAM applies it to user names and passwords.
module Pop3Functional.Core.Tests.SaslPrepTests

open Expecto
open Pop3Functional.Core

let private prepared input expected =
    testCase $"%A{input} → %A{expected}"
    <| fun () -> Expect.equal (SaslPrep.prepare input) (Ok expected) "prepared"

let private refused (name: string) input =
    testCase $"{name} is refused"
    <| fun () -> Expect.isError (SaslPrep.prepare input) "refused"

[<Tests>]
let tests =
    testList
        "SASLprep (RFC 4013)"
        [
            testList
                "the examples of RFC 4013 §3"
                [
                    // 1. SOFT HYPHEN mapped to nothing; 2–3. case kept; 4–5. NFKC.
                    prepared "I\u00ADX" "IX"
                    prepared "user" "user"
                    prepared "USER" "USER"
                    prepared "\u00AA" "a"
                    prepared "\u2168" "IX"
                    // 6. a prohibited character; 7. a bidi violation (RFC 3454 §6).
                    refused "U+0007 (prohibited)" "\u0007"
                    refused "U+0627 U+0031 (bidi)" "\u06271"
                ]
            testList
                "mapping (RFC 4013 §2.1)"
                [
                    prepared "pass\u00A0word" "pass word"
                    prepared "pass\u3000word" "pass word"
                    prepared "a\u200Bb\uFEFFc" "abc"
                    prepared "" ""
                ]
            testList
                "prohibited output (RFC 4013 §2.3)"
                [
                    refused "DEL" "a\u007Fb"
                    refused "a C1 control" "a\u0085b"
                    refused "a private-use character" "a\uE000b"
                    refused "a non-character" "a\uFFFFb"
                    refused "a lone surrogate" "a\uD800b"
                    refused "a tagging character" "a\U000E0041b"
                    refused "left-to-right mark" "a\u200Eb"
                ]
            testList
                "bidi (RFC 3454 §6)"
                [
                    prepared "\u05D0\u05D1" "\u05D0\u05D1"
                    prepared "\u0627\u0031\u0628" "\u0627\u0031\u0628"
                    refused "right-to-left mixed with Latin" "\u05D0a\u05D1"
                    refused "right-to-left not at the end" "\u05D0\u05D1a"
                ]
            testCase "non-ASCII letters pass and compose (NFKC)"
            <| fun () ->
                Expect.equal (SaslPrep.prepare "e\u0301t\u00E9") (Ok "\u00E9t\u00E9") "composed"
                Expect.equal (SaslPrep.prepare "\uFB01") (Ok "fi") "ligature"
            testCase "null is an error, not an exception"
            <| fun () -> Expect.isError (SaslPrep.prepare null) "null"
        ]
