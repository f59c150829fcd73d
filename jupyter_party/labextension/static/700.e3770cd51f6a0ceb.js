"use strict";(self.rspackChunkjupyter_party=self.rspackChunkjupyter_party||[]).push([[700],{646(t,r,e){var o=e(601),n=e.n(o),a=e(314),p=(e.n(a))()(n());p.push([t.id,`.jp-party-panel {
  background: var(--jp-layout-color1);
  color: var(--jp-ui-font-color1);
  font-size: var(--jp-ui-font-size1);
  overflow: auto;
  padding: 4px 8px;
}
.jp-party-header {
  align-items: center;
  display: flex;
  justify-content: space-between;
}
.jp-party-panel h2,
.jp-party-panel h3 {
  margin: 6px 0;
}
.jp-party-list {
  list-style: none;
  margin: 0;
  padding: 0;
}
.jp-party-item {
  border-bottom: 1px solid var(--jp-border-color2);
  padding: 4px 0;
}
.jp-party-name {
  font-weight: 600;
}
.jp-party-kind,
.jp-party-connections,
.jp-party-empty {
  color: var(--jp-ui-font-color2);
}
.jp-party-status {
  color: var(--jp-ui-font-color2);
}
.jp-party-failed .jp-party-name,
.jp-party-status-error {
  color: var(--jp-error-color1);
}
.jp-party-error,
.jp-party-log {
  background: var(--jp-layout-color2);
  font-family: var(--jp-code-font-family);
  font-size: var(--jp-code-font-size);
  max-height: 12em;
  overflow: auto;
  white-space: pre-wrap;
}
.jp-party-actions {
  display: flex;
  flex-wrap: wrap;
  gap: 2px;
  margin-top: 2px;
}
.jp-party-button {
  background: var(--jp-layout-color2);
  border: 1px solid var(--jp-border-color1);
  color: var(--jp-ui-font-color1);
  cursor: pointer;
  font-size: var(--jp-ui-font-size0);
}
.jp-party-link {
  box-sizing: border-box;
  margin: 6px 0;
  width: 100%;
}
.jp-party-subtitle {
  font-weight: 600;
}
`,""]),e.d(r,{},{A:p})},314(t){t.exports=function(t){var r=[];return r.toString=function(){return this.map(function(r){var e="",o=void 0!==r[5];return r[4]&&(e+="@supports (".concat(r[4],") {")),r[2]&&(e+="@media ".concat(r[2]," {")),o&&(e+="@layer".concat(r[5].length>0?" ".concat(r[5]):""," {")),e+=t(r),o&&(e+="}"),r[2]&&(e+="}"),r[4]&&(e+="}"),e}).join("")},r.i=function(t,e,o,n,a){"string"==typeof t&&(t=[[null,t,void 0]]);var p={};if(o)for(var i=0;i<this.length;i++){var c=this[i][0];null!=c&&(p[c]=!0)}for(var s=0;s<t.length;s++){var l=[].concat(t[s]);o&&p[l[0]]||(void 0!==a&&(void 0===l[5]||(l[1]="@layer".concat(l[5].length>0?" ".concat(l[5]):""," {").concat(l[1],"}")),l[5]=a),e&&(l[2]&&(l[1]="@media ".concat(l[2]," {").concat(l[1],"}")),l[2]=e),n&&(l[4]?(l[1]="@supports (".concat(l[4],") {").concat(l[1],"}"),l[4]=n):l[4]="".concat(n)),r.push(l))}},r}},601(t){t.exports=function(t){return t[1]}},72(t){var r=[];function e(t){for(var e=-1,o=0;o<r.length;o++)if(r[o].identifier===t){e=o;break}return e}function o(t,o){for(var n={},a=[],p=0;p<t.length;p++){var i=t[p],c=o.base?i[0]+o.base:i[0],s=n[c]||0,l="".concat(c," ").concat(s);n[c]=s+1;var u=e(l),d={css:i[1],media:i[2],sourceMap:i[3],supports:i[4],layer:i[5]};if(-1!==u)r[u].references++,r[u].updater(d);else{var f=function(t,r){var e=r.domAPI(r);return e.update(t),function(r){r?(r.css!==t.css||r.media!==t.media||r.sourceMap!==t.sourceMap||r.supports!==t.supports||r.layer!==t.layer)&&e.update(t=r):e.remove()}}(d,o);o.byIndex=p,r.splice(p,0,{identifier:l,updater:f,references:1})}a.push(l)}return a}t.exports=function(t,n){var a=o(t=t||[],n=n||{});return function(t){t=t||[];for(var p=0;p<a.length;p++){var i=e(a[p]);r[i].references--}for(var c=o(t,n),s=0;s<a.length;s++){var l=e(a[s]);0===r[l].references&&(r[l].updater(),r.splice(l,1))}a=c}}},659(t){var r={};t.exports=function(t,e){var o=function(t){if(void 0===r[t]){var e=document.querySelector(t);if(window.HTMLIFrameElement&&e instanceof window.HTMLIFrameElement)try{e=e.contentDocument.head}catch(t){e=null}r[t]=e}return r[t]}(t);if(!o)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");o.appendChild(e)}},540(t){t.exports=function(t){var r=document.createElement("style");return t.setAttributes(r,t.attributes),t.insert(r,t.options),r}},56(t,r,e){t.exports=function(t){var r=e.nc;r&&t.setAttribute("nonce",r)}},206(t){t.exports=function(t){if("u"<typeof document)return{update:function(){},remove:function(){}};var r=t.insertStyleElement(t);return{update:function(e){var o,n,a;o="",e.supports&&(o+="@supports (".concat(e.supports,") {")),e.media&&(o+="@media ".concat(e.media," {")),(n=void 0!==e.layer)&&(o+="@layer".concat(e.layer.length>0?" ".concat(e.layer):""," {")),o+=e.css,n&&(o+="}"),e.media&&(o+="}"),e.supports&&(o+="}"),(a=e.sourceMap)&&"u">typeof btoa&&(o+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(a))))," */")),t.styleTagTransform(o,r,t.options)},remove:function(){var t;null===(t=r).parentNode||t.parentNode.removeChild(t)}}}},113(t){t.exports=function(t,r){if(r.styleSheet)r.styleSheet.cssText=t;else{for(;r.firstChild;)r.removeChild(r.firstChild);r.appendChild(document.createTextNode(t))}}},959(t,r,e){var o=e(72),n=e.n(o),a=e(206),p=e.n(a),i=e(659),c=e.n(i),s=e(56),l=e.n(s),u=e(540),d=e.n(u),f=e(113),y=e.n(f),v=e(646),m={};m.styleTagTransform=y(),m.setAttributes=l(),m.insert=c().bind(null,"head"),m.domAPI=p(),m.insertStyleElement=d(),n()(v.A,m),v.A&&v.A.locals&&v.A.locals}}]);