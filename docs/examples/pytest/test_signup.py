def test_signing_up_mails_a_code_that_verifies_the_account(mayfly, app):
    inbox = mayfly.inbox()
    app.post("/signup", email=inbox["address"])
    mail = mayfly.wait(inbox, subject="code")
    page = app.post("/verify", email=inbox["address"], code=mail["codes"][0])
    assert "Your account is verified" in page
