// Package udpref measures the machine's reference for the SFU's forwarding
// rate: UDP packets one thread sends over loopback per second and per
// CPU-second, with sendto(2) per packet or sendmmsg(2) batches, bare or
// SRTP-encrypted first (AES-256-GCM, what two pion peers negotiate). An SFU
// must at least encrypt and send each packet, so "srtp+sendto" is about the
// most a forwarding core can do per packet. A receiver on another thread
// drains the packets; the sending thread's own CPU time is the denominator
// (docs/BENCHMARKS.md).
package udpref

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"golang.org/x/net/ipv4"
)

// Methods, in the order Run measures them.
const (
	MethodSendto       = "sendto"
	MethodSendmmsg     = "sendmmsg"
	MethodSRTPSendto   = "srtp+sendto"
	MethodSRTPSendmmsg = "srtp+sendmmsg"
)

// Defaults of Options fields left zero.
const (
	DefaultDuration = 3 * time.Second
	DefaultSize     = 1200
	DefaultBatch    = 32
)

// maxSize bounds Options.Size: one UDP datagram without fragmentation on
// loopback's large MTU is not the point; a packet an SFU forwards is.
const maxSize = 1500

// Options configures a measurement. The zero value measures every method
// for DefaultDuration with DefaultSize-byte packets.
type Options struct {
	// Duration is how long each method sends. Default DefaultDuration.
	Duration time.Duration
	// Size is each packet's UDP payload, RTP header included: at least
	// 12 + 16 (a header and a GCM tag), at most 1500.
	Size int
	// Batch is the messages per sendmmsg call. Default DefaultBatch.
	Batch int
}

// Result is one method's measurement.
type Result struct {
	Method           string  `json:"method"`
	Packets          uint64  `json:"packets"`  // sent
	Received         uint64  `json:"received"` // drained by the receiver
	Seconds          float64 `json:"seconds"`
	PacketsPerSecond float64 `json:"packets_per_second"`
	// CPUSeconds is the sending thread's (else the process's) CPU time.
	CPUSeconds          float64 `json:"cpu_seconds"`
	PacketsPerCPUSecond float64 `json:"packets_per_cpu_second"`
	SendErrors          uint64  `json:"send_errors"`
}

// Report is a measurement of every method.
type Report struct {
	Size     int       `json:"size_bytes"`
	Batch    int       `json:"batch"`
	CPUClock string    `json:"cpu_clock"` // "thread" or "process"
	Results  []Result  `json:"results"`
	At       time.Time `json:"at"`
}

// Run measures every method in turn. It stops early, with what it has,
// when ctx is cancelled.
func Run(ctx context.Context, opts Options) (Report, error) {
	if opts.Duration < 0 {
		return Report{}, errors.New("udpref: negative duration")
	}
	if opts.Duration == 0 {
		opts.Duration = DefaultDuration
	}
	if opts.Size == 0 {
		opts.Size = DefaultSize
	}
	if opts.Size < 12+16 || opts.Size > maxSize {
		return Report{}, fmt.Errorf("udpref: packet size %d outside [%d, %d]", opts.Size, 12+16, maxSize)
	}
	if opts.Batch == 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Batch < 1 || opts.Batch > 1024 {
		return Report{}, fmt.Errorf("udpref: batch %d outside [1, 1024]", opts.Batch)
	}
	rep := Report{Size: opts.Size, Batch: opts.Batch, CPUClock: cpuClock, At: time.Now().UTC()}
	for _, m := range []string{MethodSendto, MethodSendmmsg, MethodSRTPSendto, MethodSRTPSendmmsg} {
		if ctx.Err() != nil {
			break
		}
		res, err := measure(ctx, m, opts)
		if err != nil {
			return rep, err
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, ctx.Err()
}

// measure runs one method for opts.Duration.
func measure(ctx context.Context, method string, opts Options) (Result, error) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return Result{}, fmt.Errorf("udpref: receiver: %w", err)
	}
	_ = rx.SetReadBuffer(8 << 20)
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		_ = rx.Close()
		return Result{}, fmt.Errorf("udpref: sender: %w", err)
	}
	dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()

	var received atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		drain(rx, &received)
	}()

	res, err := send(ctx, tx, dst, method, opts)
	_ = tx.Close()
	// Let the receiver catch up with what is queued, then stop it.
	time.Sleep(100 * time.Millisecond)
	_ = rx.Close()
	wg.Wait()
	res.Received = received.Load()
	return res, err
}

// drain reads batches until conn is closed.
func drain(conn *net.UDPConn, n *atomic.Uint64) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pc := ipv4.NewPacketConn(conn)
	msgs := make([]ipv4.Message, 64)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, maxSize)}
	}
	for {
		k, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			return
		}
		n.Add(uint64(k))
	}
}

// send is the measured loop, on one locked thread.
func send(ctx context.Context, conn *net.UDPConn, dst netip.AddrPort, method string, opts Options) (Result, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	res := Result{Method: method}
	sn, err := newSender(conn, dst, method, opts)
	if err != nil {
		return res, err
	}
	cpu0 := threadCPU()
	start := time.Now()
	deadline := start.Add(opts.Duration)
	for iter := 0; ; iter++ {
		if iter%64 == 0 && (time.Now().After(deadline) || ctx.Err() != nil) {
			break
		}
		var err error
		if len(sn.msgs) == 1 {
			err = sn.sendOne(&res)
		} else {
			err = sn.sendBatch(&res)
		}
		if err != nil {
			return res, fmt.Errorf("udpref: %s: %w", method, err)
		}
		if res.SendErrors > 1000 {
			return res, fmt.Errorf("udpref: %s: more than 1000 send errors", method)
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.CPUSeconds = (threadCPU() - cpu0).Seconds()
	if res.Seconds > 0 {
		res.PacketsPerSecond = float64(res.Packets) / res.Seconds
	}
	if res.CPUSeconds > 0 {
		res.PacketsPerCPUSecond = float64(res.Packets) / res.CPUSeconds
	}
	return res, nil
}

// sender writes one method's packets: plain is the RTP packet to send (or
// to encrypt), out each batch slot's wire bytes.
type sender struct {
	conn  *net.UDPConn
	dst   netip.AddrPort
	pc    *ipv4.PacketConn
	enc   *srtp.Context // nil: no SRTP
	hdr   rtp.Header
	seq   uint16
	plain []byte
	out   [][]byte
	msgs  []ipv4.Message
}

func newSender(conn *net.UDPConn, dst netip.AddrPort, method string, opts Options) (*sender, error) {
	withSRTP := method == MethodSRTPSendto || method == MethodSRTPSendmmsg
	batch := 1
	if method == MethodSendmmsg || method == MethodSRTPSendmmsg {
		batch = opts.Batch
	}
	sn := &sender{conn: conn, dst: dst, pc: ipv4.NewPacketConn(conn),
		hdr: rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x5077a}}
	payload := opts.Size
	if withSRTP {
		var err error
		// Fixed key material: this measures cost, it protects nothing.
		sn.enc, err = srtp.CreateContext(make([]byte, 32), make([]byte, 12), srtp.ProtectionProfileAeadAes256Gcm)
		if err != nil {
			return nil, fmt.Errorf("udpref: srtp: %w", err)
		}
		payload -= 16 // the GCM tag SRTP appends
	}
	sn.plain = make([]byte, payload)
	sn.out = make([][]byte, batch)
	sn.msgs = make([]ipv4.Message, batch)
	udpDst := net.UDPAddrFromAddrPort(dst)
	for i := range sn.out {
		sn.out[i] = make([]byte, opts.Size+64)
		sn.msgs[i].Addr = udpDst
	}
	return sn, nil
}

// prepare fills slot i with the next packet and returns its bytes.
func (sn *sender) prepare(i int) ([]byte, error) {
	sn.hdr.SequenceNumber = sn.seq
	sn.hdr.Timestamp = uint32(sn.seq) * 3000
	sn.seq++
	if _, err := sn.hdr.MarshalTo(sn.plain); err != nil {
		return nil, err
	}
	if sn.enc == nil {
		return sn.plain, nil
	}
	return sn.enc.EncryptRTP(sn.out[i][:0], sn.plain, nil)
}

func (sn *sender) sendOne(res *Result) error {
	b, err := sn.prepare(0)
	if err != nil {
		return err
	}
	if _, err := sn.conn.WriteToUDPAddrPort(b, sn.dst); err != nil {
		res.SendErrors++
	} else {
		res.Packets++
	}
	return nil
}

func (sn *sender) sendBatch(res *Result) error {
	for i := range sn.msgs {
		b, err := sn.prepare(i)
		if err != nil {
			return err
		}
		if sn.enc == nil {
			// The same bytes in every slot: a copy would be work the
			// measurement does not want.
			b = sn.plain
		}
		sn.msgs[i].Buffers = [][]byte{b}
	}
	for sent := 0; sent < len(sn.msgs); {
		n, err := sn.pc.WriteBatch(sn.msgs[sent:], 0)
		if err != nil {
			res.SendErrors++
			break
		}
		sent += n
		res.Packets += uint64(n)
	}
	return nil
}

// WriteTable writes r for a person to read.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "Loopback UDP reference: %d-byte packets, sendmmsg batches of %d, CPU of the sending %s\n", r.Size, r.Batch, r.CPUClock)
	fmt.Fprintln(tw, "method\tpackets/s\tpackets per CPU-second\tsender CPU s\treceived/sent\t")
	for _, res := range r.Results {
		ratio := 0.0
		if res.Packets > 0 {
			ratio = float64(res.Received) / float64(res.Packets)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%.3f\t\n", res.Method, res.PacketsPerSecond, res.PacketsPerCPUSecond, res.CPUSeconds, ratio)
	}
	return tw.Flush()
}
