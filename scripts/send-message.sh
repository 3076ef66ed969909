# Sourced by scripts/bench-ceilings.sh and scripts/bench-send.sh: one chat message as send.lua
# takes it, so that when its signature changes (keys, arguments) it changes here and only here.
#   send_conversation RC PREFIX CONV CUSTOMER AGENT   an active conversation for it (RC: redis-cli)
#   send_message PREFIX CONV CUSTOMER                 appends its 4 keys to `message_keys` and its
#     12 arguments to `message_args`: the NEW_MESSAGE frame up to the message's id (as a node
#     writes it; redis-benchmark draws its __rand_int__ apart from the stored client_msg_id's, a
#     difference in digits only), a customer's text, a fresh client_msg_id per call (redis-benchmark's
#     __rand_int__), the relay bench's limits (a cap and a budget it never reaches: its nodes run
#     with HELPDESK_SOCKET_MESSAGE_RATE/BURST=1000000), no echo (an origin)
send_conversation() {
  "$1" HSET "${2}conv:$3" id "$3" status active customer_id "$4" agent_id "$5" first_response_at 1 >/dev/null
}
send_message() {
  message_keys+=("${1}conv:$2" "${1}conv:$2:msgs" "${1}conv:$2:dedupe" "${1}ch:conv:$2")
  local frame_head='{"event":"NEW_MESSAGE","data":{"conversation_id":"'$2'","message":{"sender":{"id":"'$3'","role":"customer","name":"Bench customer"},"text":"1234567890123456789","client_msg_id":"__rand_int__","internal":false'
  message_args+=("$frame_head" "$3" customer "Bench customer" 1234567890123456789 __rand_int__ 0 10000000 0.001 999.999 "" bench.1)
}
