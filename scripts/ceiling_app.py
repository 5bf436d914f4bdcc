"""The ceiling of this stack for scripts/bench_lookup.py: a bare Starlette route returning
fixed bytes, served by uvicorn with the same loop and parser as diemthi."""

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

BODY = (b'{"sbd":"01000002","year":2026,"province":{"code":"01","name":"Th\xc3\xa0nh ph\xe1\xbb'
        b'\x91 H\xc3\xa0 N\xe1\xbb\x99i"},"scores":{"toan":3.5,"ngu_van":7.0,"ngoai_ngu":8.75,'
        b'"hoa_hoc":4.45},"combinations":{"D01":19.25,"D07":16.7}}')


async def fixed(request):
    return Response(BODY, media_type="application/json")


async def accepted(request):
    """The ceiling of the webhook (scripts/bench_chatbot.py): read the body, answer 200."""
    await request.body()
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(routes=[Route("/v1/scores/{sbd}", fixed),
                        Route("/zalo/webhook", accepted, methods=["POST"])])
