"""Fixtures of the pytest sign-up example: Mayfly's API and the app under test, over urllib."""
import json
import os
import urllib.parse
import urllib.request

import pytest

MAYFLY = os.environ.get("MAYFLY_URL", "http://127.0.0.1:8025")
APP = os.environ.get("SIGNUP_URL", "http://127.0.0.1:8080")


class Mayfly:
    def call(self, path, token=None, data=None):
        req = urllib.request.Request(MAYFLY + path, data=data, method="POST" if data is not None else "GET")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.load(resp)

    def inbox(self):
        return self.call("/api/v1/inboxes", data=b"")

    def wait(self, inbox, **filters):
        query = urllib.parse.urlencode({"timeout": "30s", **filters})
        return self.call(f"/api/v1/inboxes/{inbox['address']}/wait?{query}", inbox["token"])["messages"][0]


class App:
    def post(self, path, **form):
        data = urllib.parse.urlencode(form).encode()
        with urllib.request.urlopen(APP + path, data=data, timeout=30) as resp:
            return resp.read().decode()


@pytest.fixture
def mayfly():
    return Mayfly()


@pytest.fixture
def app():
    return App()
