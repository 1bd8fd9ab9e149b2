module Pop3Functional.Simulator.Tests.MailStoreTests

open System
open Expecto
open Pop3Functional.Simulator

let private t0 = DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)

let private ok =
    function
    | Ok v -> v
    | Error e -> failtestf "unexpected %A" e

let private store () =
    let s = MailStore.empty |> MailStore.addUser "alice" "secret"
    let s, _ = s |> MailStore.deliver "alice" "u1" (MessageContent.OfText "a\n") |> ok
    let s, _ = s |> MailStore.deliver "alice" "u2" (MessageContent.OfText "b\n") |> ok
    s

[<Tests>]
let tests =
    testList
        "MailStore"
        [
            test "a snapshot is fixed at login: mail delivered later appears in the next session" {
                let s, snap = store () |> MailStore.tryOpen OpenPolicy.Default t0 "alice" |> ok
                let s, _ = s |> MailStore.deliver "alice" "u3" (MessageContent.OfText "c\n") |> ok
                Expect.equal (snap.Messages |> Array.map _.Uid) [| "u1"; "u2" |] "first snapshot"
                let s = s |> MailStore.commit "alice" Set.empty
                let _, snap2 = s |> MailStore.tryOpen OpenPolicy.Default t0 "alice" |> ok
                Expect.equal (snap2.Messages |> Array.map _.Uid) [| "u1"; "u2"; "u3" |] "next snapshot"
            }

            test "a second session gets InUse while the lock is held, and the lock goes at commit or release" {
                let s, _ = store () |> MailStore.tryOpen OpenPolicy.Default t0 "alice" |> ok

                Expect.equal
                    (s |> MailStore.tryOpen OpenPolicy.Default t0 "alice" |> Result.map ignore)
                    (Error OpenRefusal.InUse)
                    "locked"

                let released = s |> MailStore.release "alice"
                Expect.isOk (released |> MailStore.tryOpen OpenPolicy.Default t0 "alice") "released"
                let committed = s |> MailStore.commit "alice" Set.empty
                Expect.isOk (committed |> MailStore.tryOpen OpenPolicy.Default t0 "alice") "committed"
            }

            test "without locking, sessions share a maildrop (Cyrus)" {
                let policy = { OpenPolicy.Default with Lock = false }
                let s, _ = store () |> MailStore.tryOpen policy t0 "alice" |> ok
                Expect.isOk (s |> MailStore.tryOpen policy t0 "alice") "second session"
            }

            test "commit removes exactly the marked messages, by key, even when UIDs repeat" {
                let s = store ()

                let s, dup =
                    s |> MailStore.deliver "alice" "u1" (MessageContent.OfText "dup\n") |> ok

                let s, snap = s |> MailStore.tryOpen OpenPolicy.Default t0 "alice" |> ok
                let s = s |> MailStore.commit "alice" (Set.ofList [ dup.Key ])
                let _, after = s |> MailStore.tryOpen OpenPolicy.Default t0 "alice" |> ok
                Expect.equal snap.Messages.Length 3 "before"
                Expect.equal (after.Messages |> Array.map _.Key) (snap.Messages[..1] |> Array.map _.Key) "after"
            }

            test "LOGIN-DELAY refuses a login too soon after the previous one and says how long to wait" {
                let policy =
                    { OpenPolicy.Default with
                        LoginDelay = TimeSpan.FromSeconds 10.0
                    }

                let s, _ = store () |> MailStore.tryOpen policy t0 "alice" |> ok
                let s = s |> MailStore.release "alice"

                match s |> MailStore.tryOpen policy (t0.AddSeconds 4.0) "alice" with
                | Error(OpenRefusal.LoginDelay remaining) ->
                    Expect.equal remaining (TimeSpan.FromSeconds 6.0) "remaining"
                | other -> failtestf "expected LoginDelay, got %A" other

                Expect.isOk (s |> MailStore.tryOpen policy (t0.AddSeconds 10.0) "alice") "after the delay"
            }

            test "unknown users and deliveries to them are refused" {
                Expect.equal
                    (store () |> MailStore.tryOpen OpenPolicy.Default t0 "bob" |> Result.map ignore)
                    (Error OpenRefusal.NoSuchUser)
                    "open"

                Expect.isError (store () |> MailStore.deliver "bob" "x" (MessageContent.OfText "x")) "deliver"
            }

            test "changing a password keeps the messages" {
                let s = store () |> MailStore.addUser "alice" "new"
                Expect.equal (s |> MailStore.password "alice") (Some "new") "password"
                Expect.equal (s.TryFind "alice" |> Option.map (fun a -> a.Messages.Length)) (Some 2) "messages"
            }
        ]
