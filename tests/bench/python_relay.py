"""A plain Python chat relay, the yardstick of issue 9: just enough of HelpDesk's REST and
WebSocket protocol for `helpdesk-bench relay` to drive it (login, users, chat start, HELLO,
PICK/JOIN ACKs), and per message exactly XADD + PUBLISH on one channel per conversation, with
every node relaying the published frame to its local sockets. No auth, no checks, no queue:
it is a cost reference, not a server.

    .build/bench-venv/bin/python tests/bench/python_relay.py --port 8181 --redis redis://127.0.0.1:6393
"""
import argparse
import asyncio
import itertools
import json
import time
import uuid

import redis.asyncio as aioredis
from aiohttp import WSMsgType, web

PREFIX = "pyrelay:"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8181)
    parser.add_argument("--redis", default="redis://127.0.0.1:6393")
    args = parser.parse_args()
    ids = itertools.count(1)
    state = {"sockets": {}, "subscribed": set()}

    async def startup(app):
        app["redis"] = aioredis.from_url(args.redis)
        app["pubsub"] = app["redis"].pubsub()
        await app["pubsub"].subscribe(PREFIX + "ch:none")
        app["reader"] = asyncio.create_task(relay_published(app))

    async def relay_published(app):
        # One pub/sub connection per node; a published frame goes as it is to the local sockets.
        async for message in app["pubsub"].listen():
            if message["type"] != "message":
                continue
            conversation = message["channel"].decode()[len(PREFIX) + 8:]
            text = message["data"].decode()
            for ws in list(state["sockets"].get(conversation, ())):
                await ws.send_str(text)

    async def login(request):
        body = await request.json()
        return web.json_response({"access_token": "staff:" + body["email"], "refresh_token": "-", "expires_in": 900})

    async def users(request):
        return web.json_response({"id": next(ids)}, status=201)

    async def start_chat(request):
        conversation = str(uuid.uuid4())
        return web.json_response({"conversation_id": conversation, "customer_token": "customer:" + conversation, "position": 1})

    async def ready(request):
        return web.Response(text="ok")

    async def socket(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        token = request.headers.get("Authorization", "")[7:]
        user = token.split(":", 1)[-1]
        role = "customer" if token.startswith("customer:") else "agent"
        await ws.send_str(json.dumps({"event": "HELLO", "data": {"node_id": str(args.port), "user": {"id": user, "role": role, "name": user}}}))
        joined = set()
        redis = request.app["redis"]
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                event, data, ref = frame.get("event"), frame.get("data", {}), frame.get("ref")
                conversation = data.get("conversation_id", "")
                if event == "SEND_MESSAGE":
                    now = int(time.time() * 1000)
                    message_id = (await redis.xadd(PREFIX + "conv:" + conversation + ":msgs", {
                        "sender_id": user, "sender_role": role, "sender_name": user, "text": data["text"],
                        "client_msg_id": data["client_msg_id"], "internal": "0", "sent_at": now})).decode()
                    await redis.publish(PREFIX + "ch:conv:" + conversation, json.dumps({"event": "NEW_MESSAGE", "data": {
                        "conversation_id": conversation, "message": {
                            "id": message_id, "sender": {"id": user, "role": role, "name": user}, "text": data["text"],
                            "sent_at": now, "client_msg_id": data["client_msg_id"], "internal": False}}}))
                    ack = {"conversation_id": conversation, "message_id": message_id, "client_msg_id": data["client_msg_id"], "duplicate": False}
                elif event == "JOIN_CONVERSATION":
                    state["sockets"].setdefault(conversation, set()).add(ws)
                    joined.add(conversation)
                    if conversation not in state["subscribed"]:
                        state["subscribed"].add(conversation)
                        await request.app["pubsub"].subscribe(PREFIX + "ch:conv:" + conversation)
                    ack = {"conversation_id": conversation}
                else:
                    ack = {"conversation_id": conversation}
                reply = {"event": "ACK", "data": ack}
                if ref is not None:
                    reply["ref"] = ref
                await ws.send_str(json.dumps(reply))
        finally:
            for conversation in joined:
                state["sockets"].get(conversation, set()).discard(ws)
        return ws

    app = web.Application()
    app.on_startup.append(startup)
    app.router.add_post("/api/v1/auth/login", login)
    app.router.add_post("/api/v1/users", users)
    app.router.add_post("/api/v1/conversations", start_chat)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/ws", socket)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
