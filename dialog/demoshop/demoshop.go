// Package demoshop is a small in-memory order service the kefu binary serves itself at
// /demo/..., so the demo flows (order status, refund, cancel order, change address) call
// something real. Its data is a fixed seed with fixed dates: every run, and every test, sees the
// same five orders. State changes (cancellations, new addresses, refunds) live in memory only.
//
// Every answer is JSON. Outcomes a flow branches on (an unknown order, an order that can no
// longer be cancelled) are 200 with "found" or "ok" false; only malformed requests are 4xx.
package demoshop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kefu-dev/kefu/dialog"
)

const (
	maxBody         = 64 << 10        // bytes of a request body
	maxSkew         = 5 * time.Minute // allowed distance of a signature's timestamp from now
	maxAddressRunes = 200
	maxIdempotency  = 1024 // refund responses remembered for repeated Idempotency-Keys
	firstRefundID   = 100001
)

// The statuses an order goes through.
const (
	statusProcessing = "processing"
	statusShipped    = "shipped"
	statusDelivered  = "delivered"
	statusCancelled  = "cancelled"
)

// statusText is each status for a customer, in Chinese and English.
var statusText = map[string]struct{ zh, en string }{
	statusProcessing: {"处理中", "Processing"},
	statusShipped:    {"已发货", "Shipped"},
	statusDelivered:  {"已签收", "Delivered"},
	statusCancelled:  {"已取消", "Cancelled"},
}

// order is one order of the demo shop.
type order struct {
	number   string // upper-case
	status   string
	carrier  string // empty until shipped
	tracking string
	eta      string // YYYY-MM-DD: expected (or actual) delivery; empty when cancelled
	total    string // amount and currency, e.g. "59.90 CNY"
	itemEN   string
	itemZH   string
	address  string
}

// seed is the shop's fixed data. Dates are fixed, never time.Now, so tests are deterministic.
func seed() []order {
	return []order{
		{number: "SO20261127001", status: statusShipped, carrier: "SF Express", tracking: "SF1234567890",
			eta: "2026-11-29", total: "59.90 CNY", itemEN: "T-shirt", itemZH: "T恤",
			address: "上海市浦东新区世纪大道100号 1201室 张伟 138****0001"},
		{number: "SO20261127002", status: statusProcessing,
			eta: "2026-12-01", total: "199.00 CNY", itemEN: "running shoes", itemZH: "跑鞋",
			address: "北京市朝阳区建国路88号 3号楼502室 李娜 139****0002"},
		{number: "SO20261120003", status: statusDelivered, carrier: "JD Logistics", tracking: "JD0012345678",
			eta: "2026-11-22", total: "89.00 CNY", itemEN: "backpack", itemZH: "双肩包",
			address: "广州市天河区天河路385号 王芳 137****0003"},
		{number: "A-1029", status: statusProcessing,
			eta: "2026-12-03", total: "35.50 USD", itemEN: "phone case", itemZH: "手机壳",
			address: "Alex Morgan, 221 Harbour Street, Apt 4B, Sydney NSW 2000, Australia"},
		{number: "SO20261101004", status: statusCancelled,
			total: "129.00 CNY", itemEN: "wireless earbuds", itemZH: "无线耳机",
			address: "深圳市南山区科技园南路10号 陈静 136****0004"},
	}
}

// reasons explain, in both languages, why an order in a status refuses a change.
var (
	cannotCancel = map[string]struct{ en, zh string }{
		statusShipped:   {"The order has already shipped, so it can no longer be cancelled. You can refuse the parcel or ask for a refund once it arrives.", "订单已发货，无法取消。您可以拒收包裹，或在收货后申请退款。"},
		statusDelivered: {"The order has already been delivered, so it can no longer be cancelled. You can ask for a refund instead.", "订单已签收，无法取消。您可以申请退款。"},
		statusCancelled: {"The order is already cancelled.", "订单已经取消了。"},
	}
	cannotChangeAddress = map[string]struct{ en, zh string }{
		statusShipped:   {"The order has already shipped, so its address can no longer be changed.", "订单已发货，无法修改收货地址。"},
		statusDelivered: {"The order has already been delivered.", "订单已签收，无法修改收货地址。"},
		statusCancelled: {"The order is cancelled.", "订单已取消，无法修改收货地址。"},
	}
)

// Shop is the demo order service. Safe for concurrent use.
type Shop struct {
	secret []byte
	log    *slog.Logger

	mu         sync.Mutex
	orders     map[string]*order // by upper-case number
	nextRefund int
	// refunds remembers the response to each Idempotency-Key, oldest first in keys, so a
	// retried request files no second refund.
	refunds map[string]refundResponse
	keys    []string
}

// New returns a shop holding the seed orders. With a secret, every request must carry a
// signature dialog.VerifyWebhook accepts (within 5 minutes), or it is refused with 401; with a
// nil secret, signatures are not checked. A nil log is slog.Default().
func New(secret []byte, log *slog.Logger) *Shop {
	if log == nil {
		log = slog.Default()
	}
	s := &Shop{
		secret:     secret,
		log:        log,
		orders:     make(map[string]*order),
		nextRefund: firstRefundID,
		refunds:    make(map[string]refundResponse),
	}
	for _, o := range seed() {
		s.orders[o.number] = &o
	}
	return s
}

// Handler serves the shop's routes, all under /demo/:
//
//	GET  /demo/orders/{number}          the order, or {"found": false}
//	POST /demo/refunds                  file a refund for slots.order_number
//	POST /demo/orders/{number}/cancel   cancel an order still processing
//	POST /demo/orders/{number}/address  change a processing order's address to slots.address
//	POST /demo/validate/order           is {"value": ...} an existing order number?
//
// The POST routes read the body the dialog engine sends: {"session_id", "flow", "step",
// "language", "slots": {...}}.
func (s *Shop) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /demo/orders/{number}", s.route(s.getOrder))
	mux.Handle("POST /demo/refunds", s.route(s.refund))
	mux.Handle("POST /demo/orders/{number}/cancel", s.route(s.cancel))
	mux.Handle("POST /demo/orders/{number}/address", s.route(s.changeAddress))
	mux.Handle("POST /demo/validate/order", s.route(s.validateOrder))
	return mux
}

// handlerFunc is a route's handler: it gets the request's body, already read and verified, and
// returns the status and the value to send as JSON.
type handlerFunc func(r *http.Request, body []byte) (int, any)

// route reads the body (at most 64 KiB), checks its signature when the shop has a secret, runs
// h and writes its answer.
func (s *Shop) route(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				writeJSON(w, http.StatusRequestEntityTooLarge, errorBody(fmt.Sprintf("body larger than %d bytes", maxBody)))
				return
			}
			writeJSON(w, http.StatusBadRequest, errorBody("cannot read body"))
			return
		}
		if s.secret != nil {
			if err := dialog.VerifyWebhook(s.secret, r, body, time.Now(), maxSkew); err != nil {
				s.log.Warn("demo shop: request refused", "method", r.Method, "path", r.URL.Path, "error", err)
				writeJSON(w, http.StatusUnauthorized, errorBody("invalid or missing signature"))
				return
			}
		}
		status, v := h(r, body)
		writeJSON(w, status, v)
	})
}

// orderView is a found order as GET /demo/orders/{number} shows it.
type orderView struct {
	Found            bool   `json:"found"`
	Number           string `json:"number"`
	Status           string `json:"status"`
	StatusZH         string `json:"status_zh"`
	StatusEN         string `json:"status_en"`
	Carrier          string `json:"carrier"`
	Tracking         string `json:"tracking"`
	ETA              string `json:"eta"`
	Total            string `json:"total"`
	ItemEN           string `json:"item_en"`
	ItemZH           string `json:"item_zh"`
	Address          string `json:"address"`
	CanCancel        bool   `json:"can_cancel"`
	CanChangeAddress bool   `json:"can_change_address"`
}

type notFound struct {
	Found  bool   `json:"found"` // always false
	Number string `json:"number"`
}

func (s *Shop) getOrder(r *http.Request, _ []byte) (int, any) {
	number := normalize(r.PathValue("number"))
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[number]
	if !ok {
		return http.StatusOK, notFound{Number: number}
	}
	text := statusText[o.status]
	return http.StatusOK, orderView{
		Found: true, Number: o.number,
		Status: o.status, StatusZH: text.zh, StatusEN: text.en,
		Carrier: o.carrier, Tracking: o.tracking, ETA: o.eta, Total: o.total,
		ItemEN: o.itemEN, ItemZH: o.itemZH, Address: o.address,
		CanCancel: o.status == statusProcessing, CanChangeAddress: o.status == statusProcessing,
	}
}

// refundResponse is the answer to POST /demo/refunds.
type refundResponse struct {
	OK          bool   `json:"ok"`
	ID          string `json:"id,omitempty"`
	OrderNumber string `json:"order_number,omitempty"`
	Amount      string `json:"amount,omitempty"`
	Error       string `json:"error,omitempty"`
}

func (s *Shop) refund(r *http.Request, body []byte) (int, any) {
	var req slotsRequest
	if err := decode(body, &req); err != nil {
		return http.StatusBadRequest, errorBody(err.Error())
	}
	number := normalize(req.Slots.get("order_number"))
	key := r.Header.Get(dialog.HeaderIdempotencyKey)

	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.refunds[key]; ok && key != "" {
		return http.StatusOK, prev
	}
	var resp refundResponse
	if o, ok := s.orders[number]; ok {
		resp = refundResponse{OK: true, ID: fmt.Sprintf("RF-%06d", s.nextRefund), OrderNumber: o.number, Amount: o.total}
		s.nextRefund++
		s.log.Info("demo shop: refund filed", "id", resp.ID, "order", o.number, "reason", req.Slots.get("reason"))
	} else {
		resp = refundResponse{Error: "order not found"}
	}
	if key != "" {
		s.remember(key, resp)
	}
	return http.StatusOK, resp
}

// remember keeps resp for key, forgetting the oldest key beyond maxIdempotency. Call with s.mu
// held.
func (s *Shop) remember(key string, resp refundResponse) {
	if len(s.keys) >= maxIdempotency {
		delete(s.refunds, s.keys[0])
		s.keys = s.keys[1:]
	}
	s.refunds[key] = resp
	s.keys = append(s.keys, key)
}

// changeResponse is the answer to a cancellation or an address change.
type changeResponse struct {
	OK       bool   `json:"ok"`
	Status   string `json:"status,omitempty"`
	Address  string `json:"address,omitempty"`
	Error    string `json:"error,omitempty"`
	ReasonEN string `json:"reason_en,omitempty"`
	ReasonZH string `json:"reason_zh,omitempty"`
}

// orderNotFound is the change response for an unknown order.
var orderNotFound = changeResponse{Error: "order not found",
	ReasonEN: "We could not find that order. Please check the order number.",
	ReasonZH: "没有找到该订单，请核对订单号。"}

func (s *Shop) cancel(r *http.Request, _ []byte) (int, any) {
	number := normalize(r.PathValue("number"))
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[number]
	if !ok {
		return http.StatusOK, orderNotFound
	}
	if o.status != statusProcessing {
		why := cannotCancel[o.status]
		return http.StatusOK, changeResponse{Status: o.status, ReasonEN: why.en, ReasonZH: why.zh}
	}
	o.status, o.eta = statusCancelled, ""
	s.log.Info("demo shop: order cancelled", "order", o.number)
	return http.StatusOK, changeResponse{OK: true, Status: o.status}
}

func (s *Shop) changeAddress(r *http.Request, body []byte) (int, any) {
	var req slotsRequest
	if err := decode(body, &req); err != nil {
		return http.StatusBadRequest, errorBody(err.Error())
	}
	address := strings.Join(strings.Fields(req.Slots.get("address")), " ")
	number := normalize(r.PathValue("number"))

	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[number]
	switch {
	case !ok:
		return http.StatusOK, orderNotFound
	case o.status != statusProcessing:
		why := cannotChangeAddress[o.status]
		return http.StatusOK, changeResponse{Status: o.status, ReasonEN: why.en, ReasonZH: why.zh}
	case address == "":
		return http.StatusOK, changeResponse{Status: o.status, Error: "address missing",
			ReasonEN: "Please give the new address.", ReasonZH: "请提供新的收货地址。"}
	case utf8.RuneCountInString(address) > maxAddressRunes:
		return http.StatusOK, changeResponse{Status: o.status, Error: "address too long",
			ReasonEN: "That address is too long.", ReasonZH: "地址太长了。"}
	}
	o.address = address
	s.log.Info("demo shop: address changed", "order", o.number) // the address itself is personal data
	return http.StatusOK, changeResponse{OK: true, Status: o.status, Address: o.address}
}

// validateResponse is the answer to POST /demo/validate/order.
type validateResponse struct {
	Valid     bool   `json:"valid"`
	Value     string `json:"value"`
	MessageEN string `json:"message_en"`
	MessageZH string `json:"message_zh"`
}

func (s *Shop) validateOrder(_ *http.Request, body []byte) (int, any) {
	var req struct {
		Value string `json:"value"`
	}
	if err := decode(body, &req); err != nil {
		return http.StatusBadRequest, errorBody(err.Error())
	}
	number := normalize(req.Value)
	if number == "" {
		return http.StatusOK, validateResponse{MessageEN: "Please give an order number.", MessageZH: "请提供订单号。"}
	}
	s.mu.Lock()
	_, ok := s.orders[number]
	s.mu.Unlock()
	if !ok {
		return http.StatusOK, validateResponse{Value: number,
			MessageEN: fmt.Sprintf("We could not find order %s. Please check the number.", number),
			MessageZH: fmt.Sprintf("没有找到订单 %s，请核对订单号。", number)}
	}
	return http.StatusOK, validateResponse{Valid: true, Value: number,
		MessageEN: fmt.Sprintf("Found order %s.", number),
		MessageZH: fmt.Sprintf("已找到订单 %s。", number)}
}

// slotsRequest is the part of the engine's webhook body the shop reads.
type slotsRequest struct {
	Slots slots `json:"slots"`
}

// slots are a flow's slot values. The engine sends strings; numbers and booleans are taken as
// their JSON text, anything else as empty.
type slots map[string]any

func (sl slots) get(name string) string {
	switch v := sl[name].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return fmt.Sprint(v)
	}
	return ""
}

// decode reads one JSON value from body into v; anything else is an error for a 400.
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("empty body, want JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON: %v", err)
	}
	if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
		return errors.New("malformed JSON: more than one value")
	}
	return nil
}

// normalize is an order number as the shop stores it: trimmed, upper-case.
func normalize(number string) string {
	return strings.ToUpper(strings.TrimSpace(number))
}

func errorBody(msg string) map[string]string { return map[string]string{"error": msg} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client is gone if this fails; nothing to do
}
